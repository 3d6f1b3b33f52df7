from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("api.urls")),
    # The pages people use: after the API so that /api/... always reaches the API.
    path("", include("web.urls")),
]

# A database failure outside any view (a middleware touching the session) is a 503 too; other errors as before.
handler500 = "api.errors.server_error"
# An unrouted path gets the pages' own "page not found" (the API's paths are answered in JSON by its middleware).
handler404 = "web.pages.page_not_found"
