"""A stored random record key per referral, for the compliance report's cell-key disclosure control.

Existing referrals get their own random key each (a field default would give them all the same one).
"""

import secrets

from django.db import migrations, models

import consent.models

MODULUS = 256


def give_every_referral_a_random_key(apps, schema_editor):
    Referral = apps.get_model("consent", "Referral")
    batch = []
    for referral in Referral.objects.filter(record_key__isnull=True).only("pk").iterator(chunk_size=2000):
        referral.record_key = secrets.randbelow(MODULUS)
        batch.append(referral)
        if len(batch) >= 2000:
            Referral.objects.bulk_update(batch, ["record_key"])
            batch = []
    Referral.objects.bulk_update(batch, ["record_key"])


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="referral",
            name="record_key",
            field=models.PositiveSmallIntegerField(null=True, editable=False),
        ),
        migrations.RunPython(give_every_referral_a_random_key, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="referral",
            name="record_key",
            field=models.PositiveSmallIntegerField(default=consent.models.new_record_key, editable=False),
        ),
        migrations.AddConstraint(
            model_name="referral",
            constraint=models.CheckConstraint(
                condition=models.Q(record_key__gte=0, record_key__lt=256), name="referral_record_key_range"
            ),
        ),
    ]
