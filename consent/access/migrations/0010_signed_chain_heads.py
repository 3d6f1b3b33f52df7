"""Signed chain heads (issue 14): signature columns on the head and on each write's newest event, and every
existing head signed with the log key now, so logs written before signing began keep verifying.

The log key comes from settings (ACCESS_LOG_SIGNING_KEY in production, which the system check access.E001
requires before migrate runs). On SQLite, adding the event columns rebuilds the table and drops its triggers:
consent.access.apps puts every append-only trigger back after each migrate.
"""

from django.db import migrations, models


def sign_existing_heads(apps, schema_editor):
    from django.utils import timezone

    from consent.access import heads

    ChainHead = apps.get_model("access", "ChainHead")
    AccessEvent = apps.get_model("access", "AccessEvent")
    for head in ChainHead.objects.filter(seq__gt=0):
        last = AccessEvent.objects.filter(chain_id=head.organisation_id, seq=head.seq).values_list("occurred_at", flat=True).first()
        head.signed_at = last or timezone.now()
        head.signature, head.key_id = heads.sign(head.organisation_id, head.seq, head.head_hash, head.signed_at)
        head.save(update_fields=["signed_at", "signature", "key_id"])


class Migration(migrations.Migration):
    dependencies = [("access", "0009_report_and_authorisation_actions")]

    operations = [
        migrations.AddField(
            model_name="accessevent", name="head_signature", field=models.CharField(blank=True, default="", max_length=88)
        ),
        migrations.AddField(
            model_name="accessevent", name="head_key_id", field=models.CharField(blank=True, default="", max_length=64)
        ),
        migrations.AddField(model_name="chainhead", name="signed_at", field=models.DateTimeField(null=True)),
        migrations.AddField(
            model_name="chainhead", name="signature", field=models.CharField(blank=True, default="", max_length=88)
        ),
        migrations.AddField(model_name="chainhead", name="key_id", field=models.CharField(blank=True, default="", max_length=64)),
        migrations.RunPython(sign_existing_heads, migrations.RunPython.noop),
    ]
