"""Console pages of the channels app: your chat identity links (start one, revoke one), and for the
tenant's channel admins the connections with their outbox, and the deliveries with their refusals and
mismatch diagnostics. Every write goes through the same services as the API and the CLI."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from controlplane.channels import selectors
from controlplane.channels.forms import LinkStartForm
from controlplane.channels.models import ChannelConnection, ChannelIdentity, ChannelLink
from controlplane.channels.services.links import LINKING_PROVIDERS, channel_link_revoke, channel_link_start
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.pages import (
    capability_required,
    form_refusal,
    refusal_response,
    render_page,
    wants_fragment,
)

LINK = "channels.link"
MANAGE = "channels.manage"


def _linkable(request: HttpRequest) -> list[ChannelConnection]:
    return list(
        ChannelConnection.objects.select_related("tenant").filter(
            tenant=request.console_principal.tenant,
            disconnected_at__isnull=True,
            provider__in=LINKING_PROVIDERS,
        )
    )


def _links_context(request: HttpRequest, **extra: object) -> dict[str, object]:
    principal = request.console_principal
    is_admin = MANAGE in request.console_capabilities
    identities = ChannelIdentity.objects.select_related("principal").filter(tenant=principal.tenant)
    return {
        "mine": identities.filter(principal=principal),
        "others": identities.exclude(principal=principal) if is_admin else [],
        "links": ChannelLink.objects.select_related("connection").filter(principal=principal)[:20],
        "form": LinkStartForm(connections=_linkable(request)),
        "is_admin": is_admin,
        **extra,
    }


@require_GET
@capability_required(LINK)
def links(request: HttpRequest) -> HttpResponse:
    """Your linked chat identities and links in progress; an admin also sees the tenant's others."""
    return render_page(request, "channels/links.html", "links", _links_context(request))


def _after_link(request: HttpRequest, message: str) -> HttpResponse:
    if not wants_fragment(request):
        return redirect("channels:links")
    return render_page(request, "channels/links.html", "links", _links_context(request, changed=message))


@require_POST
@capability_required(LINK)
def link_start(request: HttpRequest) -> HttpResponse:
    """Start a link (`channel_link_start`): the code goes to the identity, never to this page."""
    form = LinkStartForm(request.POST, connections=_linkable(request))
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    connection = next(c for c in _linkable(request) if c.key == form.cleaned_data["connection"])
    try:
        started = channel_link_start(
            connection=connection,
            principal=request.console_principal,
            external_id=form.cleaned_data["external_id"],
        )
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    return _after_link(
        request,
        f"A code was sent to {started.link.external_id} on {connection.ref}: reply there with "
        f"“link <code>” before {started.link.expires_at:%H:%M} UTC.",
    )


@require_POST
@capability_required(LINK)
def link_revoke(request: HttpRequest, identity_id: int) -> HttpResponse:
    """Revoke a linked identity (`channel_link_revoke`: yours, or any of the tenant's as an admin)."""
    identity = (
        ChannelIdentity.objects.select_related("tenant", "principal")
        .filter(tenant=request.console_principal.tenant, pk=identity_id)
        .first()
    )
    try:
        if identity is None:
            raise ControlPlaneError("NOT_FOUND", "no such linked identity of yours")
        channel_link_revoke(identity=identity, actor=request.console_principal)
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    return _after_link(request, f"Revoked {identity.provider}:{identity.external_id}.")


@require_GET
@capability_required(MANAGE)
def connections(request: HttpRequest) -> HttpResponse:
    """The tenant's connections (webhook URLs, secrets set, never their values) and the outbox."""
    tenant = request.console_principal.tenant
    context = {
        "rows": selectors.connection_list(tenant=tenant),
        "outbox": selectors.outbox_recent(tenant=tenant),
    }
    return render_page(request, "channels/connections.html", "connections", context)


@require_GET
@capability_required(MANAGE)
def deliveries(request: HttpRequest) -> HttpResponse:
    """Accepted deliveries and refusal digests (the ledger), and each connection's recent refusals with
    their mismatch diagnostics (the connection's admins only)."""
    tenant = request.console_principal.tenant
    context = {
        "events": selectors.deliveries_recent(tenant=tenant),
        "rows": selectors.connection_list(tenant=tenant),
    }
    return render_page(request, "channels/deliveries.html", "deliveries", context)
