"""Append-only triggers on every append-only table (issue 14), not only the access log's.

consent.access.triggers holds them; they are also put back after every migrate (SQLite drops a table's
triggers when a migration rebuilds it), so this migration is where they first appear, not their only home.
"""

from django.db import migrations


def install(apps, schema_editor):
    from consent.access import triggers

    triggers.install(schema_editor.connection)


def remove(apps, schema_editor):
    from consent.access import triggers

    triggers.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0010_signed_chain_heads"),
        ("consent", "0005_consent_record_digest"),
        ("reports", "0001_initial"),
    ]
    operations = [migrations.RunPython(install, remove)]
