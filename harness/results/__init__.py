"""The results file: its base types, observations (packed), metrics and verdicts, the summary."""
