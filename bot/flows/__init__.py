"""Conversations: each module is one flow (its steps, texts and buttons) run by `bot.flows.engine`."""
