"""`manage.py runner --port N [--host H] [--state PATH] [--workdir DIR] [--secret-env VAR]`.

The reference runner.

A real HTTP server that verifies signed `http.webhook` steps, performs demo operations once per execution
key, and stores results so a repeated key gets the first reply (see docs/runtime.md). `--generate-secret`
prints a fresh `whsec_` secret for CONTROLPLANE_RUNNER_SECRET and exits.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.kernel.signatures import hmac_secret_generate
from controlplane.runtime.executors import DEFAULT_SECRET_ENV, SECRET_ENV
from controlplane.runtime.reference_runner import ReferenceRunner


class Command(BaseCommand):
    help = (
        "Serve the reference runner for http.webhook steps (signature check, idempotency, demo operations)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--state",
            type=Path,
            default=None,
            help="SQLite file of results (default var/runner/state.sqlite3)",
        )
        parser.add_argument(
            "--workdir", type=Path, default=None, help="where `append` writes (default var/runner/files)"
        )
        parser.add_argument(
            "--secret-env", default=DEFAULT_SECRET_ENV, help="variable holding the whsec_ secret"
        )
        parser.add_argument("--tolerance", type=int, default=300, help="accepted timestamp skew in seconds")
        parser.add_argument("--generate-secret", action="store_true", help="print a new secret and exit")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["generate_secret"]:
            self.stdout.write(hmac_secret_generate())
            return
        if not SECRET_ENV.match(options["secret_env"]):
            raise CommandError("RUNNER_INVALID: --secret-env is CONTROLPLANE_RUNNER_SECRET[_<NAME>]")
        secret = os.environ.get(options["secret_env"], "")
        if not secret and options["secret_env"] == DEFAULT_SECRET_ENV:
            secret = settings.CONTROLPLANE_RUNNER_SECRET
        if not secret:
            raise CommandError(
                f"RUNNER_SECRET_MISSING: set {options['secret_env']} "
                "(`manage.py runner --generate-secret` makes one)"
            )
        base = settings.BASE_DIR / "var" / "runner"
        state = options["state"] or base / "state.sqlite3"
        workdir = options["workdir"] or base / "files"
        try:
            runner = ReferenceRunner(
                secret=secret, state=state, workdir=workdir, tolerance_seconds=options["tolerance"]
            )
        except ValueError as exc:
            raise CommandError(f"RUNNER_SECRET_MISSING: {options['secret_env']} is unusable: {exc}") from exc
        try:
            httpd = runner.server(options["host"], options["port"])
        except OSError as exc:
            raise CommandError(
                f"RUNNER_INVALID: cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from exc
        host, port = httpd.server_address[:2]
        self.stdout.write(f"runner listening on http://{host}:{port}/ state={state} workdir={workdir}")
        self.stdout.flush()
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            httpd.server_close()
