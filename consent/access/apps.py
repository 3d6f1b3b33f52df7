from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccessConfig(AppConfig):
    name = "consent.access"
    label = "access"
    verbose_name = "Data firewall and access log"

    def ready(self):
        # Hooks only: sign-in, sign-out and changes to who may see what become access events (the rules are in
        # consent.access.account_events).
        from consent.access import signals  # noqa: F401
        from consent.access.triggers import install_after_migrate

        # After every migrate, the append-only triggers are all there: SQLite drops a table's triggers whenever a
        # migration rebuilds it (consent.access.triggers).
        post_migrate.connect(install_after_migrate, sender=self, dispatch_uid="access_append_only_triggers")
