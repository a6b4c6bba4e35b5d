"""`ledger_expect_head(seq, hash, key_id)`: refuse, with SQLSTATE CPH01, unless the chain's head and
active key are these.

A writer that appended the last batch knows the head it left; it seals its next batch against that head
before taking the chain lock and sends the lock, this check, the INSERT and the COMMIT in one round
trip (controlplane/ledger/writer.py). If anyone else appended in between, the check fails the
transaction and the writer appends the careful way. SQLite (quickstart only) has no such writer.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_expect_head(expected_seq bigint, expected_hash text, expected_key text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF NOT EXISTS (
       SELECT 1 FROM (SELECT seq, hash FROM ledger_ledgerevent ORDER BY seq DESC LIMIT 1) h
        WHERE h.seq = expected_seq AND h.hash = expected_hash)
     OR NOT EXISTS (
       SELECT 1 FROM (
         SELECT key_id FROM ledger_signingkey
          WHERE valid_from_seq IS NOT NULL AND valid_until_seq IS NULL AND revoked_at IS NULL
          ORDER BY valid_from_seq DESC LIMIT 1) k
        WHERE k.key_id = expected_key)
  THEN
    RAISE EXCEPTION 'LEDGER_HEAD_MOVED: the chain head is not seq % (%), key %',
      expected_seq, expected_hash, expected_key USING ERRCODE = 'CPH01';
  END IF;
END;
$$;
"""


def _forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION, params=None)


def _backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS ledger_expect_head(bigint, text, text)")


class Migration(migrations.Migration):
    dependencies = [("ledger", "0002_append_only_triggers")]
    operations = [migrations.RunPython(_forwards, _backwards)]
