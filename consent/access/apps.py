from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "consent.access"
    label = "access"
    verbose_name = "Data firewall and access log"
