from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Consent: clients, referrals and their records"

    def ready(self):
        from consent import checks  # noqa: F401  (registers the system checks)
