from django.db import migrations, models


def mark_agency_accounts(apps, schema_editor):
    User = apps.get_model("colocation", "User")
    User.objects.filter(staff_profile__organisation__kind="benefits_agency").update(benefits_agency_account=True)


def install(apps, schema_editor):
    from colocation import triggers

    triggers.install(schema_editor.connection)


def remove(apps, schema_editor):
    from colocation import triggers

    triggers.remove(schema_editor.connection)


class Migration(migrations.Migration):

    dependencies = [
        ('colocation', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='user',
            name='benefits_agency_account',
            field=models.BooleanField(default=False, editable=False, help_text='Once an account of a benefits agency, always one.'),
        ),
        migrations.RunPython(mark_agency_accounts, migrations.RunPython.noop),
        # Installed last: on SQLite, adding the column above rebuilds the user table (and drops its triggers).
        migrations.RunPython(install, remove),
    ]
