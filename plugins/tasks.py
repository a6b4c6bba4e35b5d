"""Plugins tasks: the supervision beat and restart requests. Take names, call a service, safe to run twice."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from plugins.services import plugins_supervise, restart_request_send


@shared_task(name="plugins.tasks.plugins_supervise_task")
def plugins_supervise_task() -> dict[str, int]:
    """One supervision pass: probes, decisions from evidence, transitions, reviews, restarts, digests."""
    return plugins_supervise()


@shared_task(name="plugins.tasks.plugin_restart_task")
def plugin_restart_task(name: str, request: dict[str, Any]) -> dict[str, Any]:
    """Send one (ledgered) restart request to the plugin's control URL; a repeat is the same request."""
    return restart_request_send(name=name, request=request)
