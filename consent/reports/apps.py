from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "consent.reports"
    label = "reports"
    verbose_name = "Pilot compliance reports"
