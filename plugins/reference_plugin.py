"""The reference plugin: a small real process that does what a plugin must (docs/plugins.md), and can be told
to misbehave, for the fault-injection tests and the demo.

`python -m plugins.reference_plugin --name NAME --api URL --token-file F --key-file F [--port P] [--mode M]`

What it does:

1. optionally registers its manifest (`--register MANIFEST.json`, with its own token: its principal then
   holds `plugins.manage`);
2. heartbeats every `--interval` seconds to `POST {api}/api/v1/plugins/{name}/heartbeats/`, Standard
   Webhooks `v1a`-signed with its own Ed25519 key, sent with its own bearer token: a fresh instance id per
   process (a new id is a restart), a monotonic sequence, its version, its self-reported checks, how often
   it was restarted and its own back-off;
3. answers the supervisor's readiness probe at `GET /health` and its signed restart requests at
   `POST /control` (`v1` HMAC with CONTROLPLANE_PLUGIN_CONTROL_SECRET): a verified restart re-executes the
   process (a real restart, so a new instance id).

Modes (`--mode`): `healthy`; `degrade` (a check reports `degraded`, the probe answers 503); `hang` (after
two heartbeats it stops heartbeating and its probe never answers, the process staying up, until a restart
request cures it); `forge` (signs with a key that is not its own); `restart-loop` (re-executes itself
after every heartbeat). SIGKILL it to crash it.

Standard library only, apart from the signature helpers the control plane itself uses; the runner side of
a runner plugin stays the reference runner (`manage.py runner`), side by side with this process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controlplane.kernel import signatures

logger = logging.getLogger("reference_plugin")
MODES = ("healthy", "degrade", "hang", "forge", "restart-loop")
TOLERANCE_SECONDS = 300


class ReferencePlugin:
    def __init__(
        self,
        *,
        name: str,
        api: str,
        token: str,
        key: Ed25519PrivateKey,
        interval: float,
        mode: str = "healthy",
        control_secret: str = "",
        restarts: int = 0,
    ):
        self.name, self.api, self.token, self.key = name, api.rstrip("/"), token, key
        # A hang is cured by a restart (the point of asking for one); every other mode persists.
        mode = "healthy" if mode == "hang" and restarts > 0 else mode
        self.interval, self.mode, self.control_secret = interval, mode, control_secret
        self.instance = uuid.uuid4().hex[:16]
        self.sequence = 0
        self.restarts = restarts
        self.stopped = threading.Event()
        self.last_reply: tuple[int, dict[str, Any]] | None = None

    @property
    def hung(self) -> bool:
        """`hang` hangs after two heartbeats (evidence first, then silence)."""
        return self.mode == "hang" and self.sequence >= 2

    # --- talking to the control plane ---

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(  # noqa: S310 - the control plane's own URL
            self.api + path,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}", **headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310
                return reply.status, json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def register(self, manifest: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self._post("/api/v1/plugins/", json.dumps({"manifest": manifest}).encode(), {})

    def heartbeat(self) -> tuple[int, dict[str, Any]]:
        self.sequence += 1
        checks = {"self": "degraded" if self.mode == "degrade" else "ok"}
        body = json.dumps(
            {
                "instance": self.instance,
                "sequence": self.sequence,
                "version": "1.0.0",
                "checks": checks,
                "restart_count": self.restarts,
                "backoff": {"state": "running"},
            }
        ).encode()
        webhook_id, stamp = f"{self.instance}-{self.sequence}", int(time.time())
        signer = Ed25519PrivateKey.generate() if self.mode == "forge" else self.key
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signatures.sign_ed25519(signer, webhook_id, stamp, body),
        }
        self.last_reply = self._post(f"/api/v1/plugins/{self.name}/heartbeats/", body, headers)
        return self.last_reply

    def heartbeat_loop(self) -> None:
        while not self.stopped.is_set():
            if not self.hung:
                try:
                    status, _ = self.heartbeat()
                    logger.info("heartbeat %s -> %s", self.sequence, status)
                except OSError as exc:  # the control plane is away: try again next interval
                    logger.info("heartbeat failed: %s", exc)
                if self.mode == "restart-loop":
                    self.restart()
            self.stopped.wait(self.interval)

    def restart(self) -> None:
        """A real restart: the process re-executes itself (new instance id, sequence from 1)."""
        env = {**os.environ, "REFERENCE_PLUGIN_RESTARTS": str(self.restarts + 1)}
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, "-m", "plugins.reference_plugin", *sys.argv[1:]], env)  # noqa: S606

    # --- what the supervisor asks ---

    def control_verify(self, headers: Any, body: bytes) -> dict[str, Any] | None:
        webhook_id = headers.get("webhook-id", "")
        timestamp = headers.get("webhook-timestamp", "")
        if not (self.control_secret and webhook_id and timestamp.isdigit()):
            return None
        if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
            return None
        candidates = [s.raw for s in signatures.parse_signatures(headers.get("webhook-signature", ""))]
        content = signatures.signed_content(webhook_id, int(timestamp), body)
        if not signatures.hmac_matches(self.control_secret, content, candidates):
            return None
        return json.loads(body)

    def server(self, host: str, port: int) -> ThreadingHTTPServer:
        plugin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                if plugin.hung:
                    plugin.stopped.wait(3600)  # a hung process: the probe times out
                ok = plugin.mode != "degrade"
                self._reply(200 if ok else 503, {"ok": ok, "instance": plugin.instance})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = plugin.control_verify(self.headers, body)
                if request is None:
                    self._reply(401, {"error": {"code": "SIGNATURE_INVALID"}})
                    return
                self._reply(202, {"restarting": request.get("action") == "restart"})
                if request.get("action") == "restart":
                    threading.Timer(0.1, plugin.restart).start()

            def log_message(self, format: str, *args: Any) -> None:
                logger.info(format, *args)

        httpd = ThreadingHTTPServer((host, port), Handler)
        httpd.daemon_threads = True
        return httpd


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m plugins.reference_plugin")
    parser.add_argument("--name", required=True)
    parser.add_argument("--api", required=True, help="the control plane's base URL")
    parser.add_argument("--token-file", required=True, help="the plugin principal's API token")
    parser.add_argument("--key-file", required=True, help="base64 of the Ed25519 seed (whsk_ optional)")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--mode", choices=MODES, default="healthy")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="health and control port (0: none)")
    parser.add_argument("--register", help="a manifest (JSON file) to register first")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    plugin = ReferencePlugin(
        name=args.name,
        api=args.api,
        token=Path(args.token_file).read_text().strip(),
        key=signatures.ed25519_private_key(Path(args.key_file).read_text().strip()),
        interval=args.interval,
        mode=args.mode,
        control_secret=os.environ.get("CONTROLPLANE_PLUGIN_CONTROL_SECRET", ""),
        restarts=int(os.environ.get("REFERENCE_PLUGIN_RESTARTS", "0")),
    )
    if args.register and plugin.restarts == 0:
        status, reply = plugin.register(json.loads(Path(args.register).read_text()))
        logger.info("registered: %s %s", status, reply.get("code", reply.get("state")))
    if args.port:
        httpd = plugin.server(args.host, args.port)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print(f"reference plugin {args.name} instance {plugin.instance} mode {args.mode}", flush=True)
    try:
        plugin.heartbeat_loop()
    except KeyboardInterrupt:
        plugin.stopped.set()


if __name__ == "__main__":
    main()
