"""Benchmarks; their latest numbers go in the README."""
