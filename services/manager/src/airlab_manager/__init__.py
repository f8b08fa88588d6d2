"""The manager agent: plans research goals, reviews ideas, decides, and serves the public Lab API."""
