"""Periodic work, declared by the app that owns it. `controlplane/celery.py` gathers the beat schedule here.

Each app registers its entries from its `AppConfig.ready()`, with one line saying why the entry exists
(the docs and `manage.py` list it). `every` is seconds, or a function of no arguments returning seconds
read when the schedule is built, so an interval can come from settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PeriodicTask:
    """One beat entry: its name, the Celery task it runs, how often, and why it exists."""

    name: str
    task: str
    every: float | Callable[[], float]
    why: str

    def seconds(self) -> float:
        return float(self.every() if callable(self.every) else self.every)


_TASKS: dict[str, PeriodicTask] = {}


def register_periodic(name: str, *, task: str, every: float | Callable[[], float], why: str) -> None:
    """Declare a beat entry. Registering a name twice with another task is a bug."""
    entry = PeriodicTask(name=name, task=task, every=every, why=why)
    existing = _TASKS.get(name)
    if existing is not None and existing.task != task:
        raise ValueError(f"periodic task {name!r} is already registered for {existing.task}")
    _TASKS[name] = entry


def periodic_tasks() -> list[PeriodicTask]:
    return [_TASKS[name] for name in sorted(_TASKS)]


def beat_schedule() -> dict[str, dict[str, object]]:
    """The entries in Celery's `beat_schedule` shape."""
    return {entry.name: {"task": entry.task, "schedule": entry.seconds()} for entry in periodic_tasks()}
