"""Liaison bot: Telegram assistant for the district's private-enterprise party-building work."""
