"""ktrdr's benchmarks: ``python -m benchmarks`` (or ``python benchmarks/run_all.py``) runs them all.

See ``benchmarks/README.md``.
"""
