"""The README's "Your first hour", run as written against a fresh quickstart, so it cannot go stale.

The quickstart is what `make run` starts (SQLite, no broker, tasks in-process): the same `migrate`, `demo`
and `quickstart_admin`, then `runserver` on a free loopback port, in child processes with their own
database file and key directory. The block between `<!-- first-hour -->` and `<!-- /first-hour -->` is run
by bash in strict mode, only its server address changed; every command must succeed and say what the
README says it shows. The quickstart's log must stay free of tracebacks and of kombu's "No hostname was
supplied" (the in-memory broker URL names a host).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
README = ROOT / "README.md"

pytestmark = pytest.mark.skipif(
    not all(Path(f"/usr/bin/{tool}").exists() for tool in ("curl", "jq")), reason="needs curl and jq"
)


def first_hour_block() -> str:
    text = README.read_text()
    marked = re.search(r"<!-- first-hour -->\n```sh\n(.*?)```\n<!-- /first-hour -->", text, re.S)
    assert marked, "README.md has no first-hour block"
    return marked.group(1)


def quickstart_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "CONTROLPLANE_"))}
    return env | {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'quickstart.sqlite3'}",
        "CONTROLPLANE_ENV": "dev",
        "CONTROLPLANE_KEY_DIR": str(tmp_path / "keys"),
        "CONTROLPLANE_WITNESS_DIR": str(tmp_path / "witness"),
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_the_readmes_first_hour_runs_against_a_fresh_quickstart(tmp_path):
    env = quickstart_env(tmp_path)
    # What `make run` does before serving.
    manage(env, "migrate", "--noinput")
    setup_log = manage(env, "demo") + manage(env, "quickstart_admin")
    assert "alice" in setup_log and "bob" in setup_log

    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.3)

        script = first_hour_block().replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    out = done.stdout
    assert done.returncode == 0, f"{out[-3000:]}\n--- stderr ---\n{done.stderr[-3000:]}"

    assert re.search(r"^noop\.echo\t1\.0\.0\tlow\tnoop\.echo\t", out, re.M)  # actions list
    assert '"execution_state": "waiting for approval"' in out
    assert '"goal": "Restart checkout in production"' in out  # found in the queue
    assert '"status": "approved"' in out
    assert '"state": "completed"' in out
    assert re.search(r"^trace [0-9a-f]{32} tenant acme ", out, re.M)  # trace show
    assert '"status": "acknowledged"' in out and '"service": "payments"' in out
    assert re.search(r"0 difference\(s\)", out)
    server_log = log_path.read_text()
    assert "No hostname was supplied" not in server_log + setup_log + done.stderr
    assert "Traceback" not in server_log, server_log[-3000:]
