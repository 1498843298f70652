"""One module per Stream resource; each handler takes a Call and returns the response body."""
