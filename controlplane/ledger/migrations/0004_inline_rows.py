"""Keep ledger rows inline: TOAST only rows over 8,160 bytes (PostgreSQL's default is about 2 KB).

An ingested event's row is about 2.6 KB (the canonical bytes alone are ~1.3 KB, beside the same data as
jsonb columns), so by default PostgreSQL tried to compress its largest value on every INSERT and, when
that did not bring the row under 2 KB, moved `canonical` out of line into the TOAST table: more work on
every append and another lookup for every row verification reads. With the target at the most a heap
page holds, such rows stay in the table uncompressed; larger payloads are still compressed and moved
out of line as before. Rows written earlier stay as they are. Nothing to do on SQLite.
"""

from django.db import migrations


def _forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE ledger_ledgerevent SET (toast_tuple_target = 8160)")


def _backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE ledger_ledgerevent RESET (toast_tuple_target)")


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_expect_head")]
    operations = [migrations.RunPython(_forwards, _backwards)]
