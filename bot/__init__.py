"""Liaison bot: Telegram assistant for the district's private-enterprise party-building work."""

import os

# Opt in to python-telegram-bot's timedelta durations (e.g. RetryAfter.retry_after) now, instead of the
# deprecation warning PTB 22 emits whenever it builds one.
os.environ.setdefault("PTB_TIMEDELTA", "true")
