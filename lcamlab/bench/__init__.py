"""Benchmarks (``lcamlab bench NAME``): each runs two variants side by side in one run and prints the ratio."""
