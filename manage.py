#!/usr/bin/env python
"""Django's command-line entry point for the Coditect platform."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coditect.settings")
    from django.core.management import execute_from_command_line

    from fdb_backend.engines.cluster import ClientLibraryMissing

    try:
        execute_from_command_line(sys.argv)
    except ClientLibraryMissing as error:
        # One line, not a traceback: what is missing and how to install it.
        sys.exit(f"manage.py: {error}")


if __name__ == "__main__":
    main()
