"""Checking a results file: validate (recompute), reproduce (re-execute), compare, merge."""
