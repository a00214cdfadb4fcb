"""The suites, package data: `bi_bench.harness.packaged.suite_file` finds them wherever bi-bench is installed."""
