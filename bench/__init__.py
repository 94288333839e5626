"""Benchmarks for tuneloop: scripts that print measured ratios beside their targets.

Run one with ``python -m bench.<name> [--quick] [--json OUT]`` or all with
``python bench/run_all.py``. They are not tests: nothing here asserts a timing.
"""
