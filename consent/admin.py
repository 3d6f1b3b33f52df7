from django.contrib import admin

from consent.models import ConsentTemplate
from consent.selectors import template_is_used


@admin.register(ConsentTemplate)
class ConsentTemplateAdmin(admin.ModelAdmin):
    """Templates only: client records are never managed through the admin."""

    list_display = ("code", "version", "language", "title", "effective_from", "effective_to", "body_sha256")
    readonly_fields = ("body_sha256",)

    def get_readonly_fields(self, request, obj=None):
        # Immutable once a consent record uses it: the hash in every record must keep meaning that text.
        if obj is not None and template_is_used(obj):
            return [f.name for f in obj._meta.fields]
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return obj is None or not template_is_used(obj)
