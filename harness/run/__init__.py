"""A run: the one case loop (run and reproduce), the engines a backend builds, the journal, throughput, and the environment recorded."""
