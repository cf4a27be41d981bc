"""Tests that kill mutants the rest of the suite let survive (see docs/testing.md)."""
