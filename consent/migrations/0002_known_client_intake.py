from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('consent', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='referral',
            name='client_known_at_intake',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='referral',
            name='intake_nhs_number',
            field=models.CharField(blank=True, max_length=10, verbose_name='NHS number as given at intake'),
        ),
        migrations.AddField(
            model_name='referral',
            name='intake_year_of_birth',
            field=models.PositiveSmallIntegerField(blank=True, null=True, verbose_name='year of birth as given at intake'),
        ),
    ]
