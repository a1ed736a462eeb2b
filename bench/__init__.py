"""Benchmarks for the targets of SPEC §7; each prints its baseline, its figure and the ratio."""
