"""`manage.py policy list | show | explain | validate | create | activate | bootstrap`: policy profiles.

`create` and `activate` act for the person whose API token is in `CONTROLPLANE_TOKEN` (or
`--token-file`), with the capability the API requires (`platform.policy.manage`); `bootstrap` is an
installation command, ledgered as the shell user (`cli:<os user>@<host>`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.identity.cli import add_token_argument, cli_actor, cli_principal
from controlplane.identity.models import PrincipalKind
from controlplane.kernel.errors import ControlPlaneError
from controlplane.policy import selectors, services
from controlplane.policy.content import content_hash, profile_content_validate
from controlplane.policy.evaluation import Context, PolicyDecision, StepFacts
from controlplane.policy.models import Environment, RiskTier

ACTOR = "cli"
MANAGE = "platform.policy.manage"


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ControlPlaneError("VALIDATION_FAILED", f"{what} is not JSON: {exc}") from exc


def _read_content(path: str) -> Any:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ControlPlaneError("VALIDATION_FAILED", f"cannot read {path}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ControlPlaneError("POLICY_PROFILE_INVALID", f"$: {path} is not JSON: {exc}") from exc


class Command(BaseCommand):
    help = "List, show, validate, create, activate and bootstrap policy profiles; explain a verdict."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="every profile version with its status and hash")
        listing.add_argument("--environment", choices=Environment.values)

        show = sub.add_parser("show", help="one profile version (the newest unless --version)")
        show.add_argument("name")
        show.add_argument("--version", type=int)
        show.add_argument("--json", action="store_true", help="print the content only, as JSON")

        explain = sub.add_parser("explain", help="the verdict a step would get, with the rule trail")
        explain.add_argument("--action", required=True, dest="step_action")
        explain.add_argument("--tier", required=True, choices=RiskTier.values)
        explain.add_argument("--action-version", default="")
        explain.add_argument("--input", default="{}", help="the step's inputs as a JSON object")
        explain.add_argument("--principal-kind", default=PrincipalKind.HUMAN, choices=PrincipalKind.values)
        explain.add_argument("--environment", choices=Environment.values, help="default: CONTROLPLANE_ENV")
        explain.add_argument("--tenant", default="")
        explain.add_argument("--label", action="append", default=[], help="NAME=VALUE (repeatable)")
        explain.add_argument("--profile", help="explain under this profile instead of the active one")
        explain.add_argument("--profile-version", type=int)
        explain.add_argument("--json", action="store_true")

        validate = sub.add_parser("validate", help="check a content file; prints its hash")
        validate.add_argument("file")

        create = sub.add_parser("create", help="save a content file as the next version (a draft)")
        create.add_argument("name")
        create.add_argument("--environment", required=True, choices=Environment.values)
        create.add_argument("--file", required=True)
        create.add_argument("--reason", required=True)
        add_token_argument(create)

        activate = sub.add_parser("activate", help="make a version the active profile of its environment")
        activate.add_argument("name")
        activate.add_argument("--version", type=int, required=True)
        activate.add_argument("--reason", required=True)
        activate.add_argument("--expected-hash", help="refuse unless the content hash is this one")
        add_token_argument(activate)

        bootstrap = sub.add_parser("bootstrap", help="activate the shipped profile if none is active")
        bootstrap.add_argument("--environment", choices=Environment.values, help="default: CONTROLPLANE_ENV")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "_" + options["action"])(options)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _list(self, options: dict[str, Any]) -> None:
        for profile in selectors.profile_list(environment=options["environment"]):
            self.stdout.write(
                f"{profile.name}\tv{profile.version}\t{profile.environment}\t{profile.status}\t"
                f"{profile.content_hash}"
            )

    def _show(self, options: dict[str, Any]) -> None:
        profile = selectors.profile_get(name=options["name"], version=options["version"])
        content = json.dumps(profile.content, indent=2, sort_keys=True)
        if options["json"]:
            self.stdout.write(content)
            return
        self.stdout.write(f"profile {profile.ref} environment={profile.environment} status={profile.status}")
        self.stdout.write(f"content_hash {profile.content_hash}")
        self.stdout.write(f"created {profile.created_at.isoformat()} by {profile.created_by}")
        if profile.activated_at:
            self.stdout.write(f"activated {profile.activated_at.isoformat()}")
        self.stdout.write(content)

    def _explain(self, options: dict[str, Any]) -> None:
        inputs = _json_arg(options["input"], "--input")
        if not isinstance(inputs, dict):
            raise ControlPlaneError("VALIDATION_FAILED", "--input must be a JSON object")
        labels = {}
        for label in options["label"]:
            name, sep, value = label.partition("=")
            if not sep or not name:
                raise ControlPlaneError("VALIDATION_FAILED", f"--label {label!r} is not NAME=VALUE")
            labels[name] = value
        profile = None
        if options["profile"]:
            profile = selectors.profile_get(name=options["profile"], version=options["profile_version"])
        decision = selectors.explain(
            step=StepFacts(
                action=options["step_action"],
                tier=options["tier"],
                inputs=inputs,
                action_version=options["action_version"],
            ),
            context=Context(
                environment=options["environment"] or settings.CONTROLPLANE_ENV,
                principal_kind=options["principal_kind"],
                principal=ACTOR,
                tenant=options["tenant"],
                labels=labels,
            ),
            profile=profile,
        )
        if options["json"]:
            body = {**decision.as_dict(), "decision_hash": decision.decision_hash}
            self.stdout.write(json.dumps(body, indent=2, sort_keys=True))
            return
        self._print_decision(decision)

    def _print_decision(self, decision: PolicyDecision) -> None:
        enforcement = "enforced" if decision.enforced else "NOT ENFORCED: dev warning only"
        self.stdout.write(f"verdict {decision.verdict} -> {decision.effective_verdict} ({enforcement})")
        self.stdout.write(f"tier {decision.base_tier} -> {decision.tier}")
        if decision.quorum:
            ladder = " ".join(f"{e.after_seconds}s:L{e.level}" for e in decision.escalation) or "-"
            self.stdout.write(
                f"quorum {decision.quorum} timeout {decision.approval_timeout_seconds}s escalation {ladder}"
            )
        self.stdout.write(f"reasons {' '.join(decision.reason_codes)}")
        profile = decision.profile
        self.stdout.write(
            f"profile {f'{profile.name}@v{profile.version} {profile.content_hash}' if profile else '-'}"
        )
        self.stdout.write("trail")
        for entry in decision.trail:
            matched = "matched" if entry.matched else "-"
            self.stdout.write(f"  {entry.kind:<11} {entry.rule:<24} {matched:<8} {entry.effect}")
        self.stdout.write(f"decision_hash {decision.decision_hash}")

    def _validate(self, options: dict[str, Any]) -> None:
        content = _read_content(options["file"])
        profile_content_validate(content)
        self.stdout.write(f"valid content_hash {content_hash(content)}")

    def _create(self, options: dict[str, Any]) -> None:
        actor = cli_principal(options, capability=MANAGE)
        if not options["reason"].strip():
            raise ControlPlaneError("VALIDATION_FAILED", "--reason must not be blank")
        result = services.profile_create(
            name=options["name"],
            environment=options["environment"],
            content=_read_content(options["file"]),
            actor=actor,
            reason=options["reason"],
        )
        profile = result.profile
        verb = "created" if result.created else "unchanged, latest is"
        self.stdout.write(
            f"{verb} {profile.ref} ({profile.environment}, {profile.status}) {profile.content_hash}"
        )

    def _activate(self, options: dict[str, Any]) -> None:
        actor = cli_principal(options, capability=MANAGE)
        profile = selectors.profile_get(name=options["name"], version=options["version"])
        profile = services.profile_activate(
            profile=profile, actor=actor, reason=options["reason"], expected_hash=options["expected_hash"]
        )
        self.stdout.write(f"active in {profile.environment}: {profile.ref} {profile.content_hash}")

    def _bootstrap(self, options: dict[str, Any]) -> None:
        environment = options["environment"] or settings.CONTROLPLANE_ENV
        profile = services.profile_bootstrap(environment=environment, actor=cli_actor())
        self.stdout.write(f"active in {environment}: {profile.ref} {profile.content_hash}")
