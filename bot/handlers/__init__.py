"""Thin Telegram entry points: they check who is asking, open a unit of work and call a flow or a query."""
