from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0002_known_client_intake"),
        ("consent", "0002_scope_withdrawals"),
    ]

    operations = []
