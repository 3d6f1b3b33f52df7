"""The data-protection officer's pages: the alert queue by actor and day, the log, the chain, subject access.

The same selectors and services as the API's DPO endpoints: a benefits-agency account is refused as a whole
(and logged), anyone else who is not a DPO of a therapy provider is refused.
"""

from datetime import datetime, time

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.http import JsonResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.dateparse import parse_date

from consent import exports
from consent.access import firewall, selectors, services
from consent.access.log import verify_chain
from consent.access.models import Action
from web import forms
from web.context import access_context
from web.pages import page, render_page

PAGE_SIZE = 50


def _dpo_only(request) -> int:
    firewall.refuse_benefits_agency(access_context(request), action=Action.LIST)
    return selectors.dpo_organisation_id(request.user)


def _parse_group(key: str) -> tuple[int | None, str, object] | None:
    """A group's key, as the page gave it: "<actor id>/<day>" or "name:<actor name>/<day>"."""
    actor, _, day_text = (key or "").rpartition("/")
    day = parse_date(day_text) if day_text else None
    if day is None or not actor:
        return None
    if actor.startswith("name:"):
        return None, actor.removeprefix("name:"), day
    return (int(actor), "", day) if actor.isdigit() else None


@page
def alerts(request, *, failed=None):
    _dpo_only(request)
    groups = selectors.alert_groups_for_dpo(request.user)
    return render_page(request, "web/dpo_alerts.html", {"groups": groups, "failed": failed, "dispositions": forms.GroupDispositionForm().fields["disposition"].choices},
                       status=400 if failed else 200)  # fmt: skip


@page
def dispose_group(request):
    _dpo_only(request)
    if request.method != "POST":
        return redirect("/dpo/alerts/")
    form = forms.GroupDispositionForm(request.POST)
    if form.is_valid():
        parsed = _parse_group(form.cleaned_data["group"])
        try:
            if parsed is None:
                raise ValidationError({None: "That group of alerts is not in your queue; reload the page."})
            actor_id, actor_name, day = parsed
            decided = services.record_group_disposition(
                user=request.user, actor_id=actor_id, actor_name=actor_name, day=day, up_to_seq=form.cleaned_data["up_to"],
                disposition=form.cleaned_data["disposition"], note=form.cleaned_data["note"],
            )  # fmt: skip
        except services.AlertNotFound:
            form.add_error(None, "No open alerts left in that group: someone may have decided them already.")
        except ValidationError as error:
            forms.add_service_errors(form, error)
        else:
            messages.success(request, f"Decision recorded on {len(decided)} alert{'s' if len(decided) != 1 else ''}.")
            return redirect("/dpo/alerts/")
    groups = selectors.alert_groups_for_dpo(request.user)
    return render_page(
        request, "web/dpo_alerts.html",
        {"groups": groups, "failed": form, "failed_group": request.POST.get("group", ""),
         "dispositions": forms.GroupDispositionForm().fields["disposition"].choices},
        status=400,
    )  # fmt: skip


def _bound(day, *, end: bool):
    return timezone.make_aware(datetime.combine(day, time.max if end else time.min)) if day else None


@page
def log(request):
    _dpo_only(request)
    form = forms.LogFilterForm(request.GET or None)
    values = form.cleaned_data if form.is_valid() else {}
    filters = selectors.EventFilters(
        actor=values.get("actor") or None,
        referral=values.get("referral"),
        action=values.get("action") or None,
        outcome=values.get("outcome") or None,
        organisation_kind=values.get("organisation_kind") or None,
        occurred_after=_bound(values.get("occurred_after"), end=False),
        occurred_before=_bound(values.get("occurred_before"), end=True),
    )
    listing = Paginator(selectors.events_for_dpo(request.user, filters), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render_page(request, "web/dpo_log.html", {"form": form, "listing": listing, "events": list(listing.object_list),
                                                     "query": query.urlencode()},
                       status=400 if form.errors else 200)  # fmt: skip


@page
def chain(request):
    chain_id = _dpo_only(request)
    result = None
    if request.method == "POST":
        result = verify_chain(organisation_ids=[chain_id])
    status = selectors.chain_status_for_dpo(request.user)
    return render_page(request, "web/dpo_chain.html", {"status": status, "result": result})


@page
def subject_access(request):
    _dpo_only(request)
    form = forms.ReferralIdForm(request.GET or None)
    if form.is_valid():
        return redirect(f"/dpo/subject-access/{form.cleaned_data['referral']}/")
    return render_page(request, "web/dpo_subject_access.html", {"form": form}, status=400 if form.errors else 200)


@page
def subject_access_download(request, referral_id):
    _dpo_only(request)
    export = exports.subject_access_export(access_context(request, purpose="subject access request"), referral_id)
    response = JsonResponse(export, encoder=DjangoJSONEncoder, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="subject-access-{export["client"]["pseudonym"]}.json"'
    return response
