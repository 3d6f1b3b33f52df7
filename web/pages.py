"""Rendering a page: the layout's navigation for the signed-in role, and the answers to refusals.

Every page runs inside the request's transaction (ATOMIC_REQUESTS). A refusal by the firewall rolls the request
back whole and its denied events are written again after it (consent.access.refusals); the page answers it with
a page that names nothing: the same for an id that exists and one that does not.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import render

from colocation.models import OrganisationKind, Role
from colocation.selectors import staff_profile_of
from consent.access.firewall import ClientDataRefused, ReferralNotFound
from consent.access.log import AccessLogUnavailable
from consent.access.refusals import roll_back_and_log_after

SIGN_IN_URL = "/sign-in/"

# What each role finds in the header, in order: (label, path).
NAVIGATION = {
    Role.THERAPIST: [("My clients", "/clients/"), ("New self-referral", "/clients/new/")],
    Role.CLINICAL_LEAD: [("Team's clients", "/clients/"), ("New self-referral", "/clients/new/"), ("Break glass", "/break-glass/"),
                         ("Reports", "/reports/")],
    Role.DPO: [("Alerts", "/dpo/alerts/"), ("Access log", "/dpo/log/"), ("Chain status", "/dpo/chain/"),
               ("Subject access", "/dpo/subject-access/"), ("Reports", "/reports/")],
    Role.REVIEWER: [("Pilots", "/reports/")],
}  # fmt: skip


def role_of(user) -> str | None:
    """The role that decides what the layout offers; a benefits-agency account is a work coach, whatever it says."""
    profile = staff_profile_of(user)
    if profile is None:
        return None
    if profile.organisation.kind == OrganisationKind.BENEFITS_AGENCY:
        return Role.WORK_COACH
    return profile.role


def render_page(request, template: str, context: dict | None = None, *, status: int = 200):
    role = role_of(request.user)
    profile = staff_profile_of(request.user)
    layout = {
        "role": role,
        "navigation": NAVIGATION.get(role, []),
        "organisation": profile.organisation if profile else None,
    }
    return render(request, template, {**layout, **(context or {})}, status=status)


def not_found(request):
    return render_page(request, "web/not_found.html", status=404)


def refused(request, message: str = ""):
    return render_page(request, "web/refused.html", {"message": message}, status=403)


def page(view):
    """A signed-in page, whose refusals are answered as pages and whose denied events stay logged."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), SIGN_IN_URL)
        try:
            return view(request, *args, **kwargs)
        except ReferralNotFound as refusal:
            roll_back_and_log_after(request, refusal)
            return not_found(request)
        except ClientDataRefused as refusal:
            roll_back_and_log_after(request, refusal)
            return refused(request, "This account may not see client data.")
        except PermissionDenied as refusal:
            transaction.set_rollback(True)
            return refused(request, str(refusal))
        except AccessLogUnavailable as unavailable:
            # Fail closed: nothing of the request commits, and the page shows no client data.
            transaction.set_rollback(True)
            return render_page(request, "web/unavailable.html", {"message": str(unavailable)}, status=503)

    return wrapped


def page_not_found(request, exception=None):
    """The project's 404 for paths nobody routes (config.urls.handler404): the same page the firewall's refusals get."""
    return not_found(request)
