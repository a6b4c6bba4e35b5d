"""The quickstart configuration (SQLite, no Redis, tasks in-process) serves the API end to end.

The suite itself runs on PostgreSQL, so this runs a child process with the quickstart's environment:
migrate a fresh SQLite file, load the demo, then drive the API with a bearer token through Django's
test client (a real request cycle: middleware, authentication, views, in-process tasks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, django
from django.core.management import call_command
django.setup()
call_command("migrate", verbosity=0)
call_command("demo", stdout=open("/dev/null", "w"))
from django.test import Client
from controlplane.identity import services as identity
from controlplane.identity.models import Tenant, PrincipalKind
agent = identity.principal_ensure(
    tenant=Tenant.objects.get(slug="acme"), name="qs-agent", kind=PrincipalKind.AGENT,
    capabilities=["intents.submit", "executions.read"], actor="test",
)
secret = identity.token_issue(principal=agent, name="qs", actor="test").secret
client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
draft = {"goal": "say hello", "steps": [{"key": "hello", "action": "noop.echo", "inputs": {"message": "hi"}}]}
results = []
for key in ("qs-1", "qs-1", "qs-2"):
    body = draft | {"context": {"n": key}}
    response = client.post(
        "/api/v1/intents/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=key
    )
    results.append(response.status_code)
execution = response.json()["execution"]
detail = client.get(f"/api/v1/executions/{execution}/")
results.append(detail.status_code)
results.append(detail.json()["status"])
print(json.dumps(results))
"""


def test_quickstart_configuration_serves_the_api_with_tasks_in_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'quickstart.sqlite3'}",
        "CONTROLPLANE_ENV": "dev",
        "CONTROLPLANE_KEY_DIR": str(tmp_path / "keys"),
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    statuses = json.loads(done.stdout.strip().splitlines()[-1])
    # created, replayed by its Idempotency-Key, created; the execution is readable and ran in-process.
    assert statuses == [201, 200, 201, 200, "completed"]
