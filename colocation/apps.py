from django.apps import AppConfig


class ColocationConfig(AppConfig):
    name = "colocation"
    verbose_name = "Co-location: organisations, sites, pilots, staff"
