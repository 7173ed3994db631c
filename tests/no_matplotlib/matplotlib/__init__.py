"""Put this folder first on PYTHONPATH to run graphnet as if matplotlib were not installed."""

raise ImportError("matplotlib is hidden for this test (tests/no_matplotlib)")
