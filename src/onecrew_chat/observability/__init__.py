"""Watching the service: database-backed metrics, worker heartbeats, `status`, start-up checks."""
