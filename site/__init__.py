"""The leaderboard site's templates and stylesheets, package data: `bi_bench.harness.suite.packaged.site_folder`
finds them wherever bi-bench is installed."""
