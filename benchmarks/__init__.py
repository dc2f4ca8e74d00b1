"""Benchmarks of trio-enchannel against jupyter_client and raw pyzmq (run: python -m benchmarks)."""
