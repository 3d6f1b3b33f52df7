"""The therapist's and the clinical lead's pages: clients, intake, consent, checks, withdrawals, discharge, receipt.

Every page reaches its referral through consent.access.firewall (logged, or a logged refusal answered as
"page not found") and records through the consent services, exactly as the API does.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect

from colocation.models import Role
from colocation.selectors import account_by_username, clinicians_of, sites_run_by, staff_profile_of
from consent import selectors, services
from consent.access import firewall
from consent.access.models import Action
from consent.models import ReferralStatus
from consent.receipts import ConsentRecordAltered, printable_receipt
from consent.source_of_referral import SOURCE_OF_REFERRAL
from consent.wording import SCOPE_WORDING
from web import forms
from web.context import access_context
from web.pages import page, render_page, role_of

PAGE_SIZE = 50


def _client_page(request, referral_id):
    return redirect(f"/clients/{referral_id}/")


# ---- the list and one client ---------------------------------------------------------------------------------


@page
def client_list(request):
    context = access_context(request)
    # A benefits-agency account is refused the list as a whole (and logged); anyone else who records no
    # referrals has no clients here.
    firewall.refuse_list_if_not_allowed(context)
    if not services.may_record_referrals(request.user):
        raise PermissionDenied("Only therapists and clinical leads have clients here.")
    search = forms.SearchForm(request.GET or None)
    text = search.cleaned_data["q"] if search.is_valid() else ""
    # The search runs inside the firewall's queryset: it finds only the user's own (or team's) clients.
    visible = firewall.referrals_visible_to(
        request.user, firewall.Purpose.VIEW, base=selectors.referrals_for_list(filters={"search": text})
    )
    listing = Paginator(visible, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(listing.object_list)
    firewall.record_listed(context, rows)
    return render_page(request, "web/client_list.html", {"search": search, "rows": rows, "listing": listing, "text": text})


def _detail_context(request, referral, *, access: str) -> dict:
    state = selectors.consent_state(referral)
    role = role_of(request.user)
    return {
        "referral": referral,
        "access": access,
        "voluntariness": selectors.voluntariness_of(referral),
        "state": state,
        "scope_words": SCOPE_WORDING,
        "in_force_words": [SCOPE_WORDING.get(scope, scope) for scope in state.in_force],
        "source_words": SOURCE_OF_REFERRAL.get(referral.source_of_referral, ("", referral.source_of_referral))[1],
        "is_lead": role == Role.CLINICAL_LEAD,
        "can_consent": referral.status in (ReferralStatus.AWAITING_CONSENT, ReferralStatus.ACTIVE),
        "can_withdraw": referral.status == ReferralStatus.ACTIVE,
        "can_discharge": referral.status in (ReferralStatus.AWAITING_CONSENT, ReferralStatus.ACTIVE),
        "can_decline": referral.status == ReferralStatus.AWAITING_CONSENT,
        "can_check": referral.status != ReferralStatus.DECLINED,
    }


@page
def client_detail(request, referral_id):
    referral = firewall.open_referral(
        access_context(request), referral_id, purpose=firewall.Purpose.VIEW, base=selectors.referral_detail()
    )
    return render_page(request, "web/client_detail.html", _detail_context(request, referral, access="assigned"))


# ---- intake ----------------------------------------------------------------------------------------------------


@page
def new_referral(request):
    context = access_context(request)
    # Who may record comes first: anyone else is refused (a benefits-agency account logged) before any form.
    profile = services.require_recorder(context)
    sites = list(sites_run_by(profile.organisation_id))
    form = forms.ReferralForm(request.POST or None, sites=sites)
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        site = next(site for site in sites if site.pk == values["site"])
        try:
            referral = services.create_referral(
                context=context, local_reference=values["local_reference"], nhs_number=values["nhs_number"],
                year_of_birth=values["year_of_birth"], site=site, referred_on=values["referred_on"],
                source_of_referral=values["source_of_referral"], how_heard=values["how_heard"], pathway=values["pathway"],
            )  # fmt: skip
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, "Referral recorded. Now explain the service and record the client's consent.")
            return redirect(f"/clients/{referral.pk}/consent/")
    return render_page(request, "web/referral_form.html", {"form": form}, status=400 if form.errors else 200)


def add_errors(form, error):
    forms.add_service_errors(form, error)


# ---- the records of an episode ------------------------------------------------------------------------------


def _open_for_form(request, referral_id):
    """The referral a form is about, for showing the form: opened for changing, logged as a read."""
    return firewall.open_referral(access_context(request), referral_id, purpose=firewall.Purpose.CHANGE)


def _templates(request):
    templates = list(selectors.consent_templates_in_force())
    chosen = request.POST.get("template") or request.GET.get("template")
    template = next((t for t in templates if str(t.pk) == str(chosen)), templates[0] if templates else None)
    return templates, template


@page
def record_consent(request, referral_id):
    templates, template = _templates(request)
    form = forms.ConsentForm(request.POST or None, initial={"template": template.pk if template else None})
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        chosen = selectors.consent_template_by_id(values["template"])
        try:
            if chosen is None:
                raise ValidationError({None: "That consent text is no longer available; reload the page."})
            services.record_consent(
                context=access_context(request), referral_id=referral_id, template=chosen, method=values["method"],
                given_at=values["given_at"], scopes=values["scopes"],
                acknowledgements={name: name in values["acknowledgements"] for name in forms.ACKNOWLEDGEMENTS},
            )  # fmt: skip
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, "Consent recorded.")
            return _client_page(request, referral_id)
    referral = _open_for_form(request, referral_id)
    return render_page(
        request, "web/consent_form.html", {"form": form, "referral": referral, "template": template, "templates": templates},
        status=400 if form.errors else 200,
    )  # fmt: skip


def _simple_record(request, referral_id, *, form_class, template_name, record, success: str, title: str):
    form = form_class(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            record(context=access_context(request), referral_id=referral_id, **form.cleaned_data)
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, success)
            return _client_page(request, referral_id)
    referral = _open_for_form(request, referral_id)
    return render_page(request, template_name, {"form": form, "referral": referral, "title": title},
                       status=400 if form.errors else 200)  # fmt: skip


@page
def record_check(request, referral_id):
    return _simple_record(request, referral_id, form_class=forms.CheckForm, template_name="web/record_form.html",
                          record=services.record_voluntariness_check, success="Voluntariness check recorded.",
                          title="Voluntariness check")  # fmt: skip


@page
def discharge(request, referral_id):
    return _simple_record(request, referral_id, form_class=forms.DischargeForm, template_name="web/record_form.html",
                          record=services.discharge_referral, success="Discharge recorded.", title="Discharge")  # fmt: skip


@page
def decline(request, referral_id):
    return _simple_record(request, referral_id, form_class=forms.DeclineForm, template_name="web/record_form.html",
                          record=services.record_decline, success="Recorded: the client decided not to go ahead.",
                          title="The client decided not to go ahead")  # fmt: skip


@page
def withdraw(request, referral_id):
    if request.method == "POST":
        # Any known use is accepted here: whether it is in force is the service's to decide, and to say.
        form = forms.WithdrawalForm(request.POST, in_force=list(SCOPE_WORDING))
        if form.is_valid():
            values = form.cleaned_data
            try:
                if values["what"] == forms.WITHDRAW_USES:
                    services.record_scope_withdrawal(
                        context=access_context(request), referral_id=referral_id, scopes=values["scopes"],
                        withdrawn_at=values["withdrawn_at"], reason=values["reason"],
                    )  # fmt: skip
                    done = "Withdrawn: " + "; ".join(SCOPE_WORDING[s].lower() for s in values["scopes"]) + ". Therapy carries on."
                else:
                    services.record_withdrawal(
                        context=access_context(request), referral_id=referral_id, withdrawn_at=values["withdrawn_at"],
                        reason=values["reason"],
                    )  # fmt: skip
                    done = "The client has withdrawn from therapy."
            except ValidationError as error:
                add_errors(form, error)
            else:
                messages.success(request, done)
                return _client_page(request, referral_id)
    referral = _open_for_form(request, referral_id)
    state = selectors.consent_state(referral)
    if request.method != "POST":
        form = forms.WithdrawalForm(in_force=state.in_force)
    else:
        form.fields["scopes"].choices = forms.WithdrawalForm(in_force=state.in_force).fields["scopes"].choices
    return render_page(request, "web/withdraw_form.html", {"form": form, "referral": referral, "state": state},
                       status=400 if form.errors else 200)  # fmt: skip


@page
def receipt(request, referral_id):
    referral = firewall.open_referral(access_context(request), referral_id, purpose=firewall.Purpose.VIEW, action=Action.EXPORT)
    consent = selectors.latest_consent(referral)
    context = {"referral": referral, "consent": consent}
    if consent is not None:
        try:
            context.update(printable_receipt(consent))
        except ConsentRecordAltered as altered:
            return render_page(request, "web/receipt.html", {**context, "altered": str(altered)}, status=409)
    return render_page(request, "web/receipt.html", context)


# ---- the clinical lead -----------------------------------------------------------------------------------------


@page
def assignments(request, referral_id):
    context = access_context(request)
    error_form = None
    if request.method == "POST":
        username = request.POST.get("therapist", "")
        removing = request.POST.get("action") == "unassign"
        try:
            if removing:
                firewall.unassign_therapist(context, referral_id, account_by_username(username))
            else:
                firewall.assign_therapist(context, referral_id, account_by_username(username) if username else None)
        except ValidationError as error:
            error_form = error
        else:
            messages.success(request, f"{'Unassigned' if removing else 'Assigned'} {username}.")
            return redirect(f"/clients/{referral_id}/assignments/")
    referral = firewall.open_referral(context, referral_id, purpose=firewall.Purpose.ASSIGN)
    form = forms.AssignForm(request.POST or None, clinicians=clinicians_of(referral.provider_id))
    if error_form is not None:
        form.is_valid()
        forms.add_service_errors(form, error_form)
    assigned = list(firewall.assigned_therapists(referral))
    return render_page(request, "web/assignments.html", {"form": form, "referral": referral, "assigned": assigned},
                       status=400 if error_form is not None else 200)  # fmt: skip


@page
def break_glass(request):
    profile = staff_profile_of(request.user)
    firewall.refuse_benefits_agency(access_context(request), action=Action.BREAK_GLASS)
    if profile is None or profile.role != Role.CLINICAL_LEAD:
        raise PermissionDenied("Only a clinical lead may open a referral by break-glass.")
    form = forms.BreakGlassForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        try:
            referral = firewall.break_glass(
                access_context(request), values["referral"], reason=values["reason"], base=selectors.referral_detail()
            )
        except ValidationError as error:
            forms.add_service_errors(form, error)
        else:
            detail = _detail_context(request, referral, access="break_glass")
            return render_page(request, "web/client_detail.html", {**detail, "break_glass_reason": values["reason"]})
    return render_page(request, "web/break_glass.html", {"form": form}, status=400 if form.errors else 200)
