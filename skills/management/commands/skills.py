"""`manage.py skills keygen | sign | verify | install | list | disable | enable | publishers ...`

Acting commands (install, disable, enable, publishers add | rotate | revoke-key) act for the person whose
API token is in `CONTROLPLANE_TOKEN` (or `--token-file`), who must hold `platform.skills.manage`, and need
`--reason`. `install` asks for the install (a `skills.install` approval request showing the install review);
people decide it in the approval queue or with `manage.py approvals approve ID`. The publisher tooling
(keygen, sign) and the reads (verify, list, publishers list) need no token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from controlplane.identity.cli import add_token_argument, cli_principal
from controlplane.identity.models import Principal
from controlplane.kernel.errors import ControlPlaneError
from skills import envelopes, selectors, services
from skills.capabilities import MANAGE
from skills.models import Publisher
from skills.verification import Verification, bundle_digests, envelope_check, installed_check


def _person(options: dict[str, Any]) -> Principal:
    return cli_principal(options, capability=MANAGE)


def _bundle(path: str | None) -> dict[str, str] | None:
    """path (relative to the bundle directory, `/`-separated) -> SHA-256 of every file under it."""
    if not path:
        return None
    root = Path(path)
    if not root.is_dir():
        raise ControlPlaneError("SKILL_DIGEST_MISMATCH", f"--bundle {path} is not a directory")
    files = {f.relative_to(root).as_posix(): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}
    return bundle_digests(files)


def _read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CommandError(f"SKILL_ENVELOPE_INVALID: cannot read {path}: {exc}") from exc


class Command(BaseCommand):
    help = "Signed skills: publisher tooling (keygen, sign), verify, install, list, disable, the trust store."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        keygen = sub.add_parser("keygen", help="make a publisher key pair (PEM files)")
        keygen.add_argument("-o", "--out", required=True, help="private key file; the public one gets .pub")
        keygen.add_argument("--scheme", choices=["ed25519", "ecdsa"], default="ed25519")
        sign = sub.add_parser("sign", help="sign a manifest (JSON) into a DSSE envelope")
        sign.add_argument("manifest")
        sign.add_argument("--key", action="append", required=True, help="a private key file (repeatable)")
        sign.add_argument("-o", "--out", required=True)
        sign.add_argument("--payload-type", default=envelopes.PAYLOAD_TYPE)
        verify = sub.add_parser("verify", help="verify an envelope file, an installed skill, or --all")
        verify.add_argument("target", nargs="?")
        verify.add_argument("--all", action="store_true")
        verify.add_argument("--bundle", help="the code bundle's directory (checked against artifacts[])")
        install = sub.add_parser("install", help="ask to install: an approval request with the review")
        install.add_argument("envelope")
        install.add_argument("--reason", required=True)
        install.add_argument("--bundle", help="the code bundle's directory (checked against artifacts[])")
        add_token_argument(install)
        sub.add_parser("list")
        for verb in ("disable", "enable"):
            toggle = sub.add_parser(verb)
            toggle.add_argument("name")
            toggle.add_argument("--reason", required=True)
            add_token_argument(toggle)
        publishers = sub.add_parser("publishers").add_subparsers(dest="publisher_action", required=True)
        publishers.add_parser("list")
        add = publishers.add_parser("add")
        add.add_argument("name")
        add.add_argument("--key", action="append", required=True, help="a public key PEM file (repeatable)")
        add.add_argument("--threshold", type=int, default=1)
        add.add_argument("--reason", required=True)
        add_token_argument(add)
        revoke = publishers.add_parser("revoke-key")
        revoke.add_argument("key_id")
        revoke.add_argument("--reason", required=True)
        add_token_argument(revoke)
        rotate = publishers.add_parser("rotate")
        rotate.add_argument("name")
        rotate.add_argument(
            "statement", help="a DSSE key statement signed by a threshold of the current keys"
        )
        rotate.add_argument("--reason", required=True)
        add_token_argument(rotate)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "_" + options["action"])(options)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _keygen(self, options: dict[str, Any]) -> None:
        private_pem, public_pem = envelopes.keypair_generate(scheme=options["scheme"])
        out = Path(options["out"])
        out.write_bytes(private_pem)
        out.chmod(0o600)
        Path(f"{out}.pub").write_text(public_pem)
        key_id, _, _ = envelopes.public_key_load(public_pem)
        self.stdout.write(f"{key_id}\t{out}\t{out}.pub")

    def _sign(self, options: dict[str, Any]) -> None:
        manifest = _read_json(options["manifest"])
        payload = json.dumps(manifest, indent=2, sort_keys=True).encode()
        signers = [envelopes.signer_load(Path(path).read_bytes()) for path in options["key"]]
        envelope = envelopes.envelope_sign(
            payload=payload, signers=signers, payload_type=options["payload_type"]
        )
        Path(options["out"]).write_text(json.dumps(envelope, indent=2) + "\n")
        self.stdout.write(f"signed by {', '.join(s.public_key.keyid for s in signers)} -> {options['out']}")

    def _report(self, label: str, result: Verification) -> bool:
        for check in result.checks:
            mark = "ok  " if check.ok else "FAIL"
            self.stdout.write(f"{label}\t{mark}\t{check.name}\t{check.code}\t{check.detail}".rstrip())
        return result.ok

    def _verify(self, options: dict[str, Any]) -> None:
        now = timezone.now()
        if options["all"]:
            results = [(str(s), installed_check(skill=s, now=now)) for s in selectors.skill_list()]
        elif options["target"] and Path(options["target"]).is_file():
            envelope = _read_json(options["target"])
            result = envelope_check(envelope=envelope, at=now, bundle=_bundle(options.get("bundle")))
            results = [(options["target"], result)]
        elif options["target"]:
            skill = selectors.skill_current(name=options["target"])
            if skill is None:
                raise ControlPlaneError("SKILL_NOT_FOUND", f"no installed skill {options['target']!r}")
            results = [(str(skill), installed_check(skill=skill, now=now))]
        else:
            raise CommandError("name a skill or an envelope file, or give --all")
        failed = [label for label, result in results if not self._report(label, result)]
        if failed:
            codes = sorted({c for _, r in results for c in r.codes})
            raise CommandError(
                f"{codes[0]}: verification failed for {', '.join(failed)} ({', '.join(codes)})"
            )
        self.stdout.write(f"{len(results)} verified")

    def _install(self, options: dict[str, Any]) -> None:
        actor = _person(options)
        request = services.skill_install_request(
            envelope=_read_json(options["envelope"]),
            actor=actor,
            reason=options["reason"],
            bundle=_bundle(options.get("bundle")),
        )
        manifest = request.manifest
        self.stdout.write(
            f"install of {manifest['name']}@{manifest['version']} {request.status}: approval {request.pk}"
        )
        self._review(request.review)

    def _review(self, review: dict[str, Any]) -> None:
        self.stdout.write(
            f"review: {review['skill']} {review['from_version'] or '(new)'} -> {review['to_version']}, "
            f"highest tier {review['highest_risk_tier']}"
        )
        for change in review["changes"]:
            details = ", ".join(f"{k}={v}" for k, v in change.items() if k not in ("action", "change"))
            self.stdout.write(f"  {change['change']}\t{change['action']}\t{details}".rstrip())

    def _list(self, options: dict[str, Any]) -> None:
        for skill in selectors.skill_list():
            actions = ",".join(f"{a.name}@{a.version}:{a.risk_tier}" for a in skill.actions.all())
            trust = "built-in" if skill.trusted else f"signed:{len(skill.signed_by)}"
            self.stdout.write(
                f"{skill.name}\t{skill.version}\t{skill.publisher}\t{skill.status}\t{trust}\t{actions}"
            )

    def _disable(self, options: dict[str, Any]) -> None:
        actor = _person(options)
        skill = services.skill_disable(name=options["name"], actor=actor, reason=options["reason"])
        self.stdout.write(f"disabled {skill}")

    def _enable(self, options: dict[str, Any]) -> None:
        actor = _person(options)
        skill = services.skill_enable(name=options["name"], actor=actor, reason=options["reason"])
        self.stdout.write(f"enabled {skill}")

    def _publishers(self, options: dict[str, Any]) -> None:
        verb = options["publisher_action"]
        if verb == "list":
            for publisher in Publisher.objects.prefetch_related("keys"):
                keys = publisher.keys.all()
                self.stdout.write(f"{publisher.name}\tthreshold={publisher.threshold}\tkeys={len(keys)}")
                for key in keys:
                    self.stdout.write(f"  {key.key_id}\t{key.scheme}\t{key.state_at(timezone.now())}")
        elif verb == "add":
            actor = _person(options)
            publisher = services.publisher_add(
                name=options["name"],
                public_keys=[Path(p).read_text() for p in options["key"]],
                threshold=options["threshold"],
                actor=actor,
                reason=options["reason"],
            )
            self.stdout.write(f"trusted {publisher.name} ({publisher.threshold} of {publisher.keys.count()})")
        elif verb == "revoke-key":
            actor = _person(options)
            quarantined = services.publisher_key_revoke(
                key_id=options["key_id"], actor=actor, reason=options["reason"]
            )
            self.stdout.write(f"revoked {options['key_id']}; quarantined: {', '.join(quarantined) or 'none'}")
        elif verb == "rotate":
            actor = _person(options)
            publisher = Publisher.objects.filter(name=options["name"], builtin=False).first()
            if publisher is None:
                raise ControlPlaneError("SKILL_PUBLISHER_UNKNOWN", f"no publisher {options['name']!r}")
            services.publisher_rotate(
                publisher=publisher,
                statement=_read_json(options["statement"]),
                actor=actor,
                reason=options["reason"],
            )
            self.stdout.write(f"rotated {publisher.name}")
