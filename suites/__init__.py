"""The suites, package data: `bi_bench.harness.package_data.suite_file` finds them wherever bi-bench is installed."""
