"""Fault injection with real processes: the reference plugin heartbeating over HTTP to a live server, the
real supervision task deciding. SIGKILL -> crashed; a restart loop -> quarantined PLUGIN_CRASH_LOOP; a
forged heartbeat -> quarantined PLUGIN_SIGNATURE_INVALID; degrade -> a review item; a dependency crash ->
dependents blocked, then resumed in dependency order; a release needs the approval quorum."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from django.conf import settings

from approvals import services as approvals
from controlplane.celery import app as celery_app
from controlplane.kernel import signatures
from controlplane.policy import services as policy
from plugins.models import Plugin, ReviewItem
from plugins.services import plugin_release_request
from plugins.tasks import plugins_supervise_task
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.plugins.support import plugin_events, register
from tests.runtime.support import closed_port, wait_for

pytestmark = [pytest.mark.django_db(transaction=True)]

ROOT = Path(settings.BASE_DIR)


class Process:
    """The reference plugin in its own process group, killed at the end of the test."""

    def __init__(
        self, tmp_path: Path, runner, api: str, *, mode: str = "healthy", interval: float = 0.5, port: int = 0
    ):
        seed = runner.key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        folder = tmp_path / runner.name
        folder.mkdir(exist_ok=True)
        (folder / "key").write_text(base64.b64encode(seed).decode())
        (folder / "token").write_text(runner.token)
        self.log = folder / "log"
        command = [
            sys.executable, "-m", "plugins.reference_plugin", "--name", runner.name, "--api", api,
            "--token-file", str(folder / "token"), "--key-file", str(folder / "key"),
            "--interval", str(interval), "--mode", mode, "--port", str(port),
        ]  # fmt: skip
        self.popen = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={
                **os.environ,
                "CONTROLPLANE_PLUGIN_CONTROL_SECRET": settings.CONTROLPLANE_PLUGIN_CONTROL_SECRET,
            },
        )

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)


@pytest.fixture
def processes():
    started: list[Process] = []
    yield started
    for process in started:
        process.kill()


def supervise() -> dict[str, int]:
    """The beat's task, as beat runs it (its registered name, through Celery's task object)."""
    return plugins_supervise_task.apply().get()


def state(name: str) -> str:
    return Plugin.objects.get(name=name).state


def beating(name: str, at_least: int = 1):
    return lambda: Plugin.objects.get(name=name).last_sequence >= at_least


@pytest.fixture
def tenant():
    return TenantFactory(slug="acme")


def test_a_killed_plugin_is_crashed_within_its_missed_intervals(tmp_path, live_server, processes, tenant):
    runner = register("runner-eu", tenant=tenant, heartbeat_interval_seconds=1)
    process = Process(tmp_path, runner, live_server.url)
    processes.append(process)
    wait_for(beating("runner-eu", 2), timeout=20, what="heartbeats")
    supervise()
    assert state("runner-eu") == "healthy"
    process.kill()
    wait_for(
        lambda: supervise() and state("runner-eu") == "crashed", timeout=10, what="crashed", interval=0.5
    )
    assert Plugin.objects.get(name="runner-eu").state_codes == ["PLUGIN_HEARTBEAT_MISSED"]


def test_a_plugin_restarting_in_a_loop_is_quarantined_for_a_crash_loop(
    tmp_path, live_server, processes, tenant
):
    runner = register("looping", tenant=tenant, heartbeat_interval_seconds=1)
    processes.append(Process(tmp_path, runner, live_server.url, mode="restart-loop"))
    wait_for(lambda: len(Plugin.objects.get(name="looping").restarts) >= 4, timeout=30, what="four restarts")
    supervise()
    plugin = Plugin.objects.get(name="looping")
    assert (plugin.state, plugin.state_codes) == ("quarantined", ["PLUGIN_CRASH_LOOP"])


def test_a_forged_heartbeat_quarantines_the_plugin(tmp_path, live_server, processes, tenant):
    runner = register("forger", tenant=tenant, heartbeat_interval_seconds=1)
    processes.append(Process(tmp_path, runner, live_server.url, mode="forge"))
    wait_for(lambda: state("forger") == "quarantined", timeout=20, what="quarantine")
    plugin = Plugin.objects.get(name="forger")
    assert plugin.state_codes == ["PLUGIN_SIGNATURE_INVALID"] and plugin.last_sequence == 0


def test_a_degraded_plugin_goes_to_the_review_queue(tmp_path, live_server, processes, tenant):
    runner = register("sulky", tenant=tenant, heartbeat_interval_seconds=1)
    processes.append(Process(tmp_path, runner, live_server.url, mode="degrade"))
    wait_for(beating("sulky"), timeout=20, what="a heartbeat")
    supervise()
    assert state("sulky") == "degraded"
    assert ReviewItem.objects.get().code == "PLUGIN_CHECK_DEGRADED"


def test_a_dependency_crash_blocks_dependents_then_they_resume_in_order(
    tmp_path, live_server, processes, tenant
):
    db = register("db", tenant=tenant, heartbeat_interval_seconds=1)
    api = register("api", tenant=tenant, heartbeat_interval_seconds=1, depends_on=[{"name": "db"}])
    db_process = Process(tmp_path, db, live_server.url)
    processes += [db_process, Process(tmp_path, api, live_server.url)]
    wait_for(lambda: beating("db")() and beating("api")(), timeout=20, what="heartbeats")
    supervise()
    assert (state("db"), state("api")) == ("healthy", "healthy")
    db_process.kill()
    wait_for(lambda: supervise() and state("db") == "crashed", timeout=10, what="db crashed", interval=0.5)
    assert state("api") == "blocked"
    processes.append(Process(tmp_path, db, live_server.url))
    wait_for(lambda: supervise() and state("api") == "healthy", timeout=20, what="resumed", interval=0.5)
    ups = [(e.subject, e.data["to"]) for e in plugin_events(type_="transitioned")][-2:]
    assert ups == [("plugin/db", "healthy"), ("plugin/api", "healthy")]


def test_releasing_a_quarantined_plugin_needs_the_quorum(tmp_path, live_server, processes, tenant):
    policy.profile_bootstrap(environment="dev")
    caps = ["plugins.manage", "approvals.decide"]
    alice, bob, carol = (
        PrincipalFactory(tenant=tenant, name=n, human=True, capabilities=caps)
        for n in ("alice", "bob", "carol")
    )
    runner = register("forger", tenant=tenant, heartbeat_interval_seconds=1)
    forger = Process(tmp_path, runner, live_server.url, mode="forge")
    processes.append(forger)
    wait_for(lambda: state("forger") == "quarantined", timeout=20, what="quarantine")
    forger.kill()
    approval = plugin_release_request(name="forger", actor=alice, reason="rotated the key")
    assert approval.quorum == 2  # a signature violation is critical: the dev profile's critical quorum
    approvals.approval_decide(
        approval=approval, actor=bob, decision="approve", reason="ok", content_hash=approval.content_hash
    )
    assert state("forger") == "quarantined"
    approvals.approval_decide(
        approval=approval, actor=carol, decision="approve", reason="ok", content_hash=approval.content_hash
    )
    assert state("forger") == "unknown"
    processes.append(Process(tmp_path, runner, live_server.url))  # fresh, honest evidence
    wait_for(
        lambda: supervise() and state("forger") == "healthy", timeout=20, what="healthy again", interval=0.5
    )
    assert json.loads(json.dumps(Plugin.objects.get(name="forger").state_codes)) == ["PLUGIN_EVIDENCE_OK"]


def test_a_hung_plugin_fails_its_probe_is_asked_to_restart_and_comes_back(
    tmp_path, live_server, processes, tenant, settings
):
    settings.CONTROLPLANE_PLUGIN_CONTROL_SECRET = signatures.hmac_secret_generate()
    port = closed_port()
    base = f"http://127.0.0.1:{port}"
    runner = register(
        "hanger",
        tenant=tenant,
        heartbeat_interval_seconds=1,
        health_url=f"{base}/health",
        control_url=f"{base}/control",
    )
    celery_app.conf.task_always_eager = True
    try:
        processes.append(Process(tmp_path, runner, live_server.url, mode="hang", port=port))
        wait_for(
            lambda: supervise() and state("hanger") == "crashed", timeout=20, what="crashed", interval=0.5
        )
        probes = Plugin.objects.get(name="hanger").probes
        assert probes and probes[-1]["ok"] is False  # the hung probe timed out (1 s)
        wait_for(
            lambda: supervise() and state("hanger") == "healthy", timeout=30, what="restarted", interval=0.5
        )
    finally:
        celery_app.conf.task_always_eager = False
    plugin = Plugin.objects.get(name="hanger")
    assert plugin.restart_requests >= 1 and plugin.last_reported["restart_count"] == 1
    assert plugin_events("hanger", "restart.requested")
