from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.core.exceptions import ValidationError

from colocation.models import ClinicalTeam, Organisation, Pilot, Site, StaffProfile, User, check_account_memberships


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "ods_code")
    list_filter = ("kind",)
    search_fields = ("name", "ods_code")


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "venue_kind", "host_organisation", "provider", "postcode_district", "separation_last_reviewed")
    list_filter = ("venue_kind", "provider")
    search_fields = ("name", "postcode_district")


@admin.register(Pilot)
class PilotAdmin(admin.ModelAdmin):
    list_display = ("name", "starts_on", "ends_on", "cadence")
    filter_horizontal = ("sites", "overseen_by")


@admin.register(ClinicalTeam)
class ClinicalTeamAdmin(admin.ModelAdmin):
    list_display = ("name", "organisation")


class StaffProfileInline(admin.StackedInline):
    model = StaffProfile
    can_delete = False


class AccountChangeForm(UserChangeForm):
    """The user form, refusing groups and permissions for a benefits-agency account (flags: User.clean)."""

    def clean(self):
        cleaned = super().clean()
        try:
            check_account_memberships(
                user=self.instance, groups=cleaned.get("groups"), permissions=cleaned.get("user_permissions")
            )
        except ValidationError as refused:
            for field, messages in refused.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
        return cleaned


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = AccountChangeForm
    inlines = [StaffProfileInline]
    list_display = ("username", "is_active", "is_staff", "is_superuser", "benefits_agency_account")
    readonly_fields = ("benefits_agency_account",)
    fieldsets = (*BaseUserAdmin.fieldsets, ("Benefits agency", {"fields": ("benefits_agency_account",)}))
