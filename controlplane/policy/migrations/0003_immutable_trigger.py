"""PostgreSQL refuses to change a profile's identity or content, and refuses to delete a profile.

The model refuses both too; the trigger covers raw SQL and other clients. Only the status columns
(`status`, `activated_at`, `retired_at`) may change. SQLite (quickstart only) relies on the model.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION policy_profile_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'POLICY_PROFILE_IMMUTABLE: profiles are kept for replay; retire them'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NEW.name IS DISTINCT FROM OLD.name OR NEW.version IS DISTINCT FROM OLD.version
     OR NEW.environment IS DISTINCT FROM OLD.environment OR NEW.content IS DISTINCT FROM OLD.content
     OR NEW.content_hash IS DISTINCT FROM OLD.content_hash OR NEW.created_by IS DISTINCT FROM OLD.created_by
     OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
    RAISE EXCEPTION 'POLICY_PROFILE_IMMUTABLE: profile %@v% is immutable', OLD.name, OLD.version
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END;
$$;
"""


def _forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)
    schema_editor.execute(
        "CREATE TRIGGER policy_policyprofile_immutable BEFORE UPDATE OR DELETE ON policy_policyprofile "
        "FOR EACH ROW EXECUTE FUNCTION policy_profile_immutable()"
    )


def _backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP TRIGGER IF EXISTS policy_policyprofile_immutable ON policy_policyprofile")
    schema_editor.execute("DROP FUNCTION IF EXISTS policy_profile_immutable()")


class Migration(migrations.Migration):
    dependencies = [("policy", "0002_shipped_profiles")]

    operations = [migrations.RunPython(_forwards, _backwards)]
