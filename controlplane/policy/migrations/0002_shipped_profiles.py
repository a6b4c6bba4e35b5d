"""Ship `control-plane-strict-v1` (prod) and `control-plane-dev-v1` (dev) as draft version 1.

The migration writes rows only, no ledger events: migrations run where no ledger key may exist yet
(stage and prod fail closed without one). Activation is the ledgered act: `manage.py policy bootstrap`
(or `policy activate`) records `controlplane.policy.profile.activated` (see docs/policy.md).
"""

from django.db import migrations

from controlplane.policy.content import content_hash, profile_content_validate
from controlplane.policy.shipped import SHIPPED


def _forwards(apps, schema_editor):
    PolicyProfile = apps.get_model("policy", "PolicyProfile")
    for name, (environment, content) in SHIPPED.items():
        profile_content_validate(content)
        PolicyProfile.objects.get_or_create(
            name=name,
            version=1,
            defaults={
                "environment": environment,
                "content": content,
                "content_hash": content_hash(content),
                "status": "draft",
                "created_by": "migration",
            },
        )


def _backwards(apps, schema_editor):
    PolicyProfile = apps.get_model("policy", "PolicyProfile")
    PolicyProfile.objects.filter(name__in=list(SHIPPED), version=1, status="draft").delete()


class Migration(migrations.Migration):
    dependencies = [("policy", "0001_initial")]

    operations = [migrations.RunPython(_forwards, _backwards)]
