"""Consent records carry the digest of their content as written, sealed with the receipt key (issue 14); existing
rows get theirs now (the receipt key must be set, as the system check consent.E001 already requires in production).

The digest of a row written before this migration is taken from its content as it stands today: only rows
written from now on are vouched for from the moment of intake.
"""

from django.db import migrations, models


def backfill(apps, schema_editor):
    from consent.models import ConsentRecord as Live
    from consent.receipts import seal

    ConsentRecord = apps.get_model("consent", "ConsentRecord")
    for record in ConsentRecord.objects.filter(content_sha256="").iterator(chunk_size=2000):
        digest = Live.content_digest(record)
        ConsentRecord.objects.filter(pk=record.pk).update(content_sha256=digest, content_signature=seal(digest))


class Migration(migrations.Migration):
    dependencies = [("consent", "0004_merge_record_keys_and_known_clients")]

    operations = [
        migrations.AddField(
            model_name="consentrecord",
            name="content_sha256",
            field=models.CharField(default="", editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name="consentrecord",
            name="content_signature",
            field=models.CharField(default="", editable=False, max_length=88),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
