"""Benchmarks: `./run bench [scan|station|server] [options]` (figures are printed, never asserted)."""
