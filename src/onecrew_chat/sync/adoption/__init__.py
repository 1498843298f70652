"""Adopting the old backend's Stream channels: scan Stream into a ledger, decide each channel, write conversations."""
