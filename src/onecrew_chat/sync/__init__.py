"""Making Stream match our records: resolve participants, mirror identities, ensure channels and members."""
