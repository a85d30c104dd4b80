"""Conventional comparison app for the benchmarks: not part of the platform, never imported by it.

This file exists only so that repository-wide tools (mypy, pytest's rootdir logic) name the
modules below ``bench.comparison.*`` instead of top-level ``manage``/``run``/``compapp``, which
would clash with the platform's own ``manage.py``. At run time the Django project is imported
as ``compapp`` with this directory on ``PYTHONPATH`` (run.py sets that up).
"""
