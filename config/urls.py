from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("api.urls")),
]

# A database failure outside any view (a middleware touching the session) is a 503 too; other errors as before.
handler500 = "api.errors.server_error"
