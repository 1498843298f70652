"""Comparing our records with Stream and repairing the difference: the reconcile run, its drift kinds, the backfill."""
