"""Domain services: validation, parsing and business rules used by the bot."""
