"""`manage.py principals create | grant | revoke | issue-token | revoke-token | list`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from controlplane.identity import selectors, services
from controlplane.identity.models import Principal, PrincipalKind
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.shell import cli_actor


def _expiry(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = parse_datetime(value)
    if moment is None or moment.tzinfo is None:
        raise ControlPlaneError(
            "VALIDATION_FAILED", f"--expires must be an ISO 8601 time with a zone, not {value!r}"
        )
    return moment


class Command(BaseCommand):
    help = "Manage principals, their capability grants and their API tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a principal (and its tenant if new)")
        create.add_argument("name")
        create.add_argument("--tenant", required=True)
        create.add_argument("--kind", choices=PrincipalKind.values, required=True)
        create.add_argument("--user", help="link a human to this Django username (console sign-in)")
        for verb in ("grant", "revoke"):
            cmd = sub.add_parser(verb, help=f"{verb} a capability")
            cmd.add_argument("name")
            cmd.add_argument("capability")
            cmd.add_argument("--tenant", required=True)
            if verb == "grant":
                cmd.add_argument("--expires", help="ISO 8601 time the grant ends")
        issue = sub.add_parser("issue-token", help="mint an API token (printed once)")
        issue.add_argument("name")
        issue.add_argument("--tenant", required=True)
        issue.add_argument("--label", default="cli")
        issue.add_argument("--expires", help="ISO 8601 time the token ends")
        revoke_token = sub.add_parser("revoke-token", help="revoke a token by its prefix")
        revoke_token.add_argument("prefix")
        listing = sub.add_parser("list", help="principals with their capabilities and tokens")
        listing.add_argument("--tenant")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "_" + options["action"].replace("-", "_"))(options)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _principal(self, options: dict[str, Any]) -> Principal:
        return selectors.principal_get(
            tenant=selectors.tenant_get(slug=options["tenant"]), name=options["name"]
        )

    def _create(self, options: dict[str, Any]) -> None:
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise ControlPlaneError("VALIDATION_FAILED", f"no Django user {options['user']!r}")
        tenant = services.tenant_create(slug=options["tenant"], actor=cli_actor())
        principal = services.principal_create(
            tenant=tenant, name=options["name"], kind=options["kind"], user=user, actor=cli_actor()
        )
        self.stdout.write(f"created {principal.ref} ({principal.kind})")

    def _grant(self, options: dict[str, Any]) -> None:
        grant = services.grant_add(
            principal=self._principal(options),
            capability=options["capability"],
            expires_at=_expiry(options.get("expires")),
            actor=cli_actor(),
        )
        self.stdout.write(f"granted {grant.capability} to {grant.principal.ref}")

    def _revoke(self, options: dict[str, Any]) -> None:
        grant = services.grant_revoke(
            principal=self._principal(options), capability=options["capability"], actor=cli_actor()
        )
        self.stdout.write(f"revoked {grant.capability} from {grant.principal.ref}")

    def _issue_token(self, options: dict[str, Any]) -> None:
        issued = services.token_issue(
            principal=self._principal(options),
            name=options["label"],
            expires_at=_expiry(options["expires"]),
            actor=cli_actor(),
        )
        self.stdout.write(f"token {issued.token.prefix} for {issued.token.principal.ref} (shown once):")
        self.stdout.write(issued.secret)

    def _revoke_token(self, options: dict[str, Any]) -> None:
        token = services.token_revoke(prefix=options["prefix"], actor=cli_actor())
        self.stdout.write(f"revoked token {token.prefix}")

    def _list(self, options: dict[str, Any]) -> None:
        principals = Principal.objects.select_related("tenant", "user").prefetch_related("tokens")
        if options["tenant"]:
            principals = principals.filter(tenant__slug=options["tenant"])
        for principal in principals:
            tokens = [t.prefix for t in principal.tokens.all() if t.is_usable()]
            capabilities = ",".join(sorted(principal.capabilities())) or "-"
            self.stdout.write(
                f"{principal.ref}\t{principal.kind}\t{'active' if principal.is_active else 'inactive'}\t"
                f"{capabilities}\ttokens={','.join(tokens) or '-'}"
            )
