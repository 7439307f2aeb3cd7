"""Benchmarks of the station's performance budget: timing goals live here, never in tests.

The suite and its one command (``python -m bench``) arrive with the benchmark issue.
"""
