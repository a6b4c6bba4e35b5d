"""Generated documents (`docs/reason-codes.md`, `docs/contracts.md`): written by a command, checked by
`--check` (and by a test) so that the page never drifts from the code it is generated from."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError, OutputWrapper


def generated_doc_write(
    *, path: Path, text: str, command: str, check: bool, stdout: OutputWrapper, count: str
) -> None:
    """Write `text` to `path`, or with `check` refuse when the file differs (naming the command that
    regenerates it). `count` says what was written ("137 codes")."""
    name = path.relative_to(settings.BASE_DIR)
    if check:
        if not path.exists() or path.read_text() != text:
            raise CommandError(f"{name} is stale: run `manage.py {command}`")
        stdout.write(f"{name} is up to date")
        return
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    stdout.write(f"wrote {name} ({count})")
