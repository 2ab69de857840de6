"""`make demo`: try the bot in a terminal, without a Telegram token."""
