"""The static leaderboard site built from results files."""
