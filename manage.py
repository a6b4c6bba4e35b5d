#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
        sys.stdout.flush()  # inside the try: a reader that went away is found here, not at shutdown
    except BrokenPipeError:
        # The reader of our output left early (`manage.py ... | head`): not an error worth a traceback.
        # As the Python docs advise (signal module, "Note on SIGPIPE"): point stdout at devnull so the
        # interpreter's final flush stays quiet, and exit like a process killed by SIGPIPE would report.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)


if __name__ == "__main__":
    main()
