"""Benchmark harness (issue 6): fake upstream, load generator, full-stack scenarios."""
