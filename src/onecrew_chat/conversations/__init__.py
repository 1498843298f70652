"""Conversations, all of it: create (resolve, record, provision inline), lookup and listing, unread counts, heal
(GET by id and prepare finish provisioning), Idempotency-Key handling, and the JSON shape the app reads."""
