"""The HTTP layer: the app factory, request dependencies and one router module per resource."""
