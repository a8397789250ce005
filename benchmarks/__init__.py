"""Speed benchmarks of lrsc; run ``python -m benchmarks.run``."""
