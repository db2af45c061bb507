"""Benchmarks: `./run bench [scan|station|server]` (figures are printed, never asserted)."""
