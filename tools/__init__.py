"""Developer tools (not part of the bot)."""
