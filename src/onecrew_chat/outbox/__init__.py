"""The transactional outbox: rows written with the change that needs Stream work, and the worker that finishes them."""
