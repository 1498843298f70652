"""Conversations: creating them (service), Idempotency-Key handling, and the JSON shape the app reads."""
