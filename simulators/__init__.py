"""Simulated elevators that speak device protocol v1, for the demo, tests and benchmarks."""
