"""Benchmarks: program evaluation cost, rollout blast radius, test-suite time. Run `make bench`."""
