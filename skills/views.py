"""Console pages of the skills app: the skill registry (skills, versions, publisher, trust status now and at
install, actions with their tiers) and the publisher trust store. Read-only: installs go through the API or
the CLI, which show the install review."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from controlplane.kernel.pages import capability_required, render_page
from skills import selectors
from skills.models import Publisher
from skills.verification import installed_check

READ = "skills.read"


@require_GET
@capability_required(READ)
def registry(request: HttpRequest) -> HttpResponse:
    """Every skill that is not superseded, with its verification now; and the trust store."""
    now = timezone.now()
    rows = [
        {
            "skill": skill,
            "actions": list(skill.actions.all()),
            "verification": installed_check(skill=skill, now=now),
        }
        for skill in selectors.skill_list()
    ]
    publishers = Publisher.objects.prefetch_related("keys")
    context = {"rows": rows, "publishers": publishers, "revision": selectors.trust_revision(), "now": now}
    return render_page(request, "skills/registry.html", "registry", context)
