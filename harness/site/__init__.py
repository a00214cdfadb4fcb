"""The static leaderboard site: results files in (load), what each page shows (figures), pages from templates
(render), the site written out (export)."""
from bi_bench.harness.site.export import build

__all__ = ["build"]
