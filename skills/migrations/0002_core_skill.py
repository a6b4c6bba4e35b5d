"""Install the trusted core skill (the built-in actions) from `skills.core.CORE_SKILL`.

Rows only: a migration may run before a ledger key exists. The core skill is part of the code's own
trust base; its manifest hash is what `skills.Skill.manifest_hash` records.
"""

import hashlib

from django.db import migrations


def _install(apps, schema_editor):
    from controlplane.kernel.canonical import canonical_bytes
    from skills.core import CORE_SKILL, executor_name

    Skill = apps.get_model("skills", "Skill")
    ActionContract = apps.get_model("skills", "ActionContract")
    skill, _ = Skill.objects.get_or_create(
        name=CORE_SKILL["name"],
        version=CORE_SKILL["version"],
        defaults={
            "publisher": CORE_SKILL["publisher"],
            "trusted": True,
            "manifest": CORE_SKILL,
            "manifest_hash": hashlib.sha256(canonical_bytes(CORE_SKILL)).hexdigest(),
        },
    )
    for action in CORE_SKILL["actions"]:
        ActionContract.objects.get_or_create(
            name=action["name"],
            version=action["version"],
            defaults={
                "skill": skill,
                "description": action["description"],
                "input_schema": action["input_schema"],
                "output_schema": action["output_schema"],
                "risk_tier": action["risk_tier"],
                "executor": executor_name(action),
            },
        )


class Migration(migrations.Migration):
    dependencies = [("skills", "0001_initial")]
    operations = [migrations.RunPython(_install, migrations.RunPython.noop)]
