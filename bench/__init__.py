"""Benchmarks and paper-reproduction experiments (`make bench`). Results go to results/."""
