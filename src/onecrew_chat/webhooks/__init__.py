"""Stream webhooks: signature check, deduplication, and applying events to conversations and read markers."""
