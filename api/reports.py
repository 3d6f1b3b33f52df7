"""URL patterns of this module are included by api.urls."""

urlpatterns: list = []
