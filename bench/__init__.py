"""Benchmark harness of ``make bench``; see ``bench/__main__.py``."""
