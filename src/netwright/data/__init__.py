"""Data: sources (what users pass), batches (how they are cut) and splits (held-out parts)."""
