"""The `bi-bench` command line."""
