from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from colocation.models import ClinicalTeam, Organisation, Pilot, Site, StaffProfile, User


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


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    inlines = [StaffProfileInline]
    list_display = ("username", "is_active", "is_staff", "is_superuser")
