#!/usr/bin/env python
"""manage.py of the comparison app; run it from this directory (or via run.py)."""

import os
import sys

if __name__ == "__main__":
    # The project package sits beside this file; make it importable from any working directory.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "compapp.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
