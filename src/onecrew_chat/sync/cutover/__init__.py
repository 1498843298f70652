"""The cut-over from the old backend: adopting its Stream channels (scan, ledger, plan, apply), switch, catch-up."""
