"""Read paths of the app's API: conversation list, unread counts, lookup by channel id, and prepare."""
