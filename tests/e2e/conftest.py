"""The e2e tier: the whole pipeline on the local stack (sandbox/runner.py)."""
