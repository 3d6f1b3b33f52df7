"""Where a signed-in account starts, and the work coach's page: this account sees no client data."""

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect

from colocation.models import Role
from consent.access import firewall
from consent.access.models import Action
from consent.access.refusals import roll_back_and_log_after
from web.context import access_context
from web.pages import SIGN_IN_URL, page, render_page, role_of

START = {
    Role.THERAPIST: "/clients/",
    Role.CLINICAL_LEAD: "/clients/",
    Role.DPO: "/dpo/alerts/",
    Role.REVIEWER: "/reports/",
    Role.WORK_COACH: "/no-client-data/",
}


def home(request):
    if not request.user.is_authenticated:
        return redirect_to_login("/", SIGN_IN_URL)
    start = START.get(role_of(request.user))
    if start:
        return redirect(start)
    return render_page(request, "web/home.html")


@page
def no_client_data(request):
    """A benefits-agency account's start: it says what the account can see (nothing), and the visit is a refused access."""
    try:
        firewall.refuse_benefits_agency(access_context(request), action=Action.LIST)
    except firewall.ClientDataRefused as refusal:
        roll_back_and_log_after(request, refusal)
    return render_page(request, "web/no_client_data.html")
