"""`manage.py steps sweep`: run the runtime sweeper now (Celery beat runs it periodically)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from controlplane.runtime.services import step_runs_sweep


class Command(BaseCommand):
    help = "Re-dispatch steps whose worker died (lease expired) and publish steps waiting in the outbox."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        sub.add_parser("sweep")

    def handle(self, *args: Any, **options: Any) -> None:
        counts = step_runs_sweep()
        self.stdout.write(" ".join(f"{name}={count}" for name, count in counts.items()))
