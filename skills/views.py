"""Console pages of the skills app: the skill registry (skills, versions, publisher, trust status now and at
install, actions with their tiers, pending installs; disable and enable), the install review (the diff an
approver approves), and the publisher trust store. Writes go through the same services as the API and CLI."""

from __future__ import annotations

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.pages import capability_required, form_refusal, refusal_response, render_page
from skills import selectors, services
from skills.capabilities import MANAGE, READ
from skills.models import InstallRequest, InstallStatus, Publisher
from skills.verification import envelope_check, installed_check


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=2000)


def _registry_context(request: HttpRequest, *, changed: str = "") -> dict:
    now = timezone.now()
    rows = [
        {
            "skill": skill,
            "actions": list(skill.actions.all()),
            "verification": installed_check(skill=skill, now=now),
        }
        for skill in selectors.skill_list()
    ]
    pending = InstallRequest.objects.filter(status=InstallStatus.PENDING).order_by("-created_at")[:50]
    return {
        "rows": rows,
        "pending": pending,
        "revision": selectors.trust_revision(),
        "now": now,
        "may_manage": request.console_principal.has_capability(MANAGE),
        "changed": changed,
    }


@require_GET
@capability_required(READ)
def registry(request: HttpRequest) -> HttpResponse:
    """Every skill that is not superseded, with its verification now and at install; installs waiting."""
    return render_page(request, "skills/registry.html", "registry", _registry_context(request))


@require_POST
@capability_required(READ)
def toggle(request: HttpRequest, name: str, verb: str) -> HttpResponse:
    """Disable or enable a skill through the services (platform.skills.manage, a reason, ledgered)."""
    if verb not in ("disable", "enable"):
        raise Http404
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    change = services.skill_disable if verb == "disable" else services.skill_enable
    try:
        skill = change(name=name, actor=request.console_principal, reason=form.cleaned_data["reason"])
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    if not request.htmx:
        return redirect("skills:registry")
    context = _registry_context(request, changed=f"{skill} {skill.status}.")
    return render_page(request, "skills/registry.html", "registry", context)


@require_GET
@capability_required(READ)
def install_review(request: HttpRequest, request_id: str) -> HttpResponse:
    """One install request: what the skill newly allows against the installed version (the diff the
    approvers approve), every check as of now, and where its approval stands."""
    install = selectors.install_request_get(request_id=request_id)
    if install is None:
        raise Http404
    from approvals.models import ApprovalRequest

    checks = None
    if install.status == InstallStatus.PENDING:
        checks = envelope_check(envelope=install.envelope, at=timezone.now(), bundle=install.bundle or None)
    context = {
        "install": install,
        "review": install.review,
        "approval": ApprovalRequest.objects.filter(pk=install.pk).first(),
        "checks": checks,
        "actions": install.manifest.get("actions", []),
    }
    return render_page(request, "skills/install_review.html", "review", context)


@require_GET
@capability_required(READ)
def publishers(request: HttpRequest) -> HttpResponse:
    """The publisher trust store: each publisher's threshold and keys, with each key's state now."""
    now = timezone.now()
    rows = [
        {"publisher": p, "keys": [(key, key.state_at(now)) for key in p.keys.all()]}
        for p in Publisher.objects.prefetch_related("keys")
    ]
    context = {"rows": rows, "revision": selectors.trust_revision(), "now": now}
    return render_page(request, "skills/publishers.html", "publishers", context)
