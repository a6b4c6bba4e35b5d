"""Benchmarks (not tests): signed-event ingest under open-loop load, its raw ceilings, and ledger
verification. Run with `make bench` or `python -m bench`; see docs/benchmarks.md."""
