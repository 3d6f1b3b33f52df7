from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "consent.access"
    label = "access"
    verbose_name = "Data firewall and access log"

    def ready(self):
        # Hooks only: sign-in, sign-out and changes to who may see what become access events (the rules are in
        # consent.access.account_events).
        from consent.access import signals  # noqa: F401
