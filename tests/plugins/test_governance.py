"""plugin_findings: manifest validity, runtime compatibility, dependency ranges, cycles, each with a code."""

from __future__ import annotations

import pytest

from plugins.governance import plugin_findings
from plugins.models import Plugin
from tests.identity.factories import TenantFactory
from tests.plugins.support import register

pytestmark = pytest.mark.django_db


def test_a_clean_registry_has_no_findings():
    register("db", version="1.4.0")
    register(
        "api", depends_on=[{"name": "db", "version": ">=1,<2"}], compatible_contracts={"runtime": ">=1,<2"}
    )
    assert plugin_findings() == []


def test_each_problem_is_a_finding_with_its_code():
    register("db", version="2.0.0")
    register("api", depends_on=[{"name": "db", "version": ">=1,<2"}, {"name": "cache"}])
    register("future", compatible_contracts={"runtime": ">=2"})
    register("other-tenant-dep", tenant=TenantFactory(slug="globex"), depends_on=[{"name": "db"}])
    broken = register("broken")
    Plugin.objects.filter(pk=broken.plugin.pk).update(manifest={**broken.plugin.manifest, "kind": "robot"})
    Plugin.objects.filter(name="db").update(
        manifest={**Plugin.objects.get(name="db").manifest, "depends_on": [{"name": "api"}]}
    )
    findings = [(f.code, f.subject) for f in plugin_findings()]
    assert findings == [
        ("PLUGIN_DEPENDENCY_MISSING", "plugin/api"),  # db 2.0.0 is outside >=1,<2
        ("PLUGIN_DEPENDENCY_MISSING", "plugin/api"),  # cache is not registered
        ("PLUGIN_MANIFEST_INVALID", "plugin/broken"),
        ("PLUGIN_INCOMPATIBLE", "plugin/future"),
        ("PLUGIN_DEPENDENCY_MISSING", "plugin/other-tenant-dep"),  # acme's db is not in globex's reach
        ("PLUGIN_DEPENDENCY_CYCLE", "plugin/api"),
    ]
    assert plugin_findings()[0].as_dict()["detail"] == "db 2.0.0 is outside >=1,<2"


def test_governance_validate_reports_plugin_drift_with_its_code():
    """The plugins check is registered with `manage.py governance validate`: a drifted manifest fails it."""
    from io import StringIO

    from django.core.management import call_command

    broken = register("broken")
    Plugin.objects.filter(pk=broken.plugin.pk).update(manifest={**broken.plugin.manifest, "kind": "robot"})
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("governance", "validate", "--check", "plugins", stdout=out)
    assert exited.value.code == 1
    assert "GOVERNANCE_SCHEMA_INVALID" in out.getvalue() and "plugin/broken" in out.getvalue()
    assert "PLUGIN_MANIFEST_INVALID" in out.getvalue()
