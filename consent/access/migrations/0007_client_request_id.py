from django.db import migrations, models

TABLE = "access_accessevent"


def reinstall_sqlite_triggers(apps, schema_editor):
    """SQLite adds the column by rebuilding the table, which drops its append-only triggers: put them back.

    Written out here (not through consent.access.triggers) so this migration installs exactly what it removed,
    whatever later migrations do to that module. PostgreSQL adds the column in place and keeps its triggers.
    """
    if schema_editor.connection.vendor != "sqlite":
        return
    for op in ("UPDATE", "DELETE"):
        schema_editor.execute(
            f"CREATE TRIGGER IF NOT EXISTS {TABLE}_no_{op.lower()} BEFORE {op} ON {TABLE} "
            f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: {op} refused'); END;"
        )


class Migration(migrations.Migration):

    dependencies = [
        ('access', '0006_verified_checkpoints'),
    ]

    operations = [
        migrations.AddField(
            model_name='accessevent',
            name='client_request_id',
            field=models.CharField(blank=True, default='', max_length=64),
        ),
        migrations.RunPython(reinstall_sqlite_triggers, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='accessevent',
            name='action',
            field=models.CharField(choices=[('read', 'Read'), ('list', 'List'), ('create', 'Create'), ('record', 'Record (consent, withdrawal, check, decline, discharge)'), ('export', 'Export'), ('withdrawal', 'Withdrawal'), ('grant', 'Permission grant'), ('revoke', 'Permission revoke'), ('break_glass', 'Break-glass'), ('sign_in', 'Sign-in'), ('sign_in_failed', 'Failed sign-in'), ('sign_out', 'Sign-out'), ('authorisation_change', 'Authorisation change (account, organisation, template)'), ('retention', 'Retention erasure')], max_length=32),
        ),
    ]
