"""The pages' forms: they parse what was typed; the consent services decide what may be recorded.

A service's refusal (a ValidationError by field) is shown next to the field it names, in the service's own
words (`add_service_errors`).
"""

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from colocation.models import OrganisationKind
from consent.access.models import Action, Disposition, Outcome
from consent.models import (
    ACKNOWLEDGEMENTS,
    CheckStage,
    ConsentMethod,
    ConsentScope,
    DischargeReason,
    GoalRaisedBy,
    HowHeard,
    Pathway,
    WithdrawalReason,
)
from consent.source_of_referral import SOURCE_OF_REFERRAL
from consent.wording import ACKNOWLEDGEMENT_WORDING, SCOPE_WORDING

DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
DATETIME_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
YES_NO = [("yes", "Yes"), ("no", "No")]


def now_for_input():
    return timezone.localtime().replace(second=0, microsecond=0)


def source_choices():
    """NHS Talking Therapies source-of-referral codes with their meanings, grouped as the data set groups them."""
    groups: dict[str, list] = {}
    for code, (group, description) in SOURCE_OF_REFERRAL.items():
        groups.setdefault(group, []).append((code, f"{code}: {description}"))
    return list(groups.items())


def add_service_errors(form: forms.Form, error: ValidationError, *, aliases: dict | None = None) -> None:
    """Put a service's errors next to the fields they name; anything else goes above the form."""
    aliases = aliases or {}
    messages = getattr(error, "nested", None) or (error.message_dict if hasattr(error, "error_dict") else {None: error.messages})
    for name, texts in messages.items():
        if isinstance(texts, dict):
            # The client's own fields (local reference, NHS number, year of birth) come nested under "client".
            for inner, inner_texts in texts.items():
                _add(form, aliases.get(inner, inner), inner_texts)
            continue
        _add(form, aliases.get(name, name), texts)


def _add(form, name, texts):
    texts = texts if isinstance(texts, list | tuple) else [texts]
    target = name if name in form.fields else None
    for text in texts:
        form.add_error(target, str(text))


class SearchForm(forms.Form):
    q = forms.CharField(label="Search by local reference", max_length=64, required=False)


class ReferralForm(forms.Form):
    local_reference = forms.CharField(
        label="Local reference", max_length=64, help_text="Your service's own reference for the client.",
        widget=forms.TextInput(attrs={"spellcheck": "false", "width": "10"}),
    )  # fmt: skip
    nhs_number = forms.CharField(label="NHS number (optional)", max_length=20, required=False,
                                 help_text="10 digits, for example 943 476 5919.",
                                 widget=forms.TextInput(attrs={"width": "10"}))  # fmt: skip
    year_of_birth = forms.IntegerField(label="Year of birth (optional)", required=False,
                                       widget=forms.TextInput(attrs={"width": "4"}))  # fmt: skip
    site = forms.TypedChoiceField(label="Site", coerce=int, help_text="Where the client referred themselves.")
    referred_on = forms.DateField(label="Date of referral", widget=DATE_INPUT, input_formats=["%Y-%m-%d"])
    how_heard = forms.ChoiceField(label="How they heard about the service", choices=HowHeard.choices, widget=forms.RadioSelect)
    pathway = forms.ChoiceField(
        label="Pathway", choices=Pathway.choices, widget=forms.RadioSelect,
        help_text="Record what happened, even if it was not voluntary: that is what the compliance report shows.",
    )  # fmt: skip
    source_of_referral = forms.ChoiceField(label="Source of referral (NHS Talking Therapies data set)", initial="B1")

    def __init__(self, *args, sites=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].choices = [("", "Choose a site")] + [(site.pk, site.name) for site in sites]
        self.fields["source_of_referral"].choices = source_choices()
        if not self.is_bound:
            self.initial.setdefault("referred_on", timezone.localdate())


class ConsentForm(forms.Form):
    template = forms.IntegerField(widget=forms.HiddenInput)
    method = forms.ChoiceField(label="How was consent given?", choices=ConsentMethod.choices, widget=forms.RadioSelect)
    given_at = forms.DateTimeField(label="When", widget=DATETIME_INPUT, input_formats=DATETIME_FORMATS)
    acknowledgements = forms.MultipleChoiceField(
        label="The client has been told, and understands, each of these",
        choices=[(name, ACKNOWLEDGEMENT_WORDING[name]) for name in ACKNOWLEDGEMENTS],
        widget=forms.CheckboxSelectMultiple, required=False,
        help_text="Read each one to the client. Tick each one they confirm: all five are needed for consent.",
    )  # fmt: skip
    scopes = forms.MultipleChoiceField(
        label="What the client agrees we may do",
        choices=[(scope, SCOPE_WORDING[scope]) for scope in ConsentScope.values],
        widget=forms.CheckboxSelectMultiple, required=False,
        help_text="Each is the client's own choice. Therapy itself is needed to take part; every other use is optional.",
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("given_at", now_for_input())


def _yes_no(label: str, help_text: str = "") -> forms.TypedChoiceField:
    return forms.TypedChoiceField(label=label, choices=YES_NO, coerce=lambda v: v == "yes", widget=forms.RadioSelect,
                                  help_text=help_text)  # fmt: skip


class CheckForm(forms.Form):
    checked_at = forms.DateTimeField(label="When", widget=DATETIME_INPUT, input_formats=DATETIME_FORMATS)
    stage = forms.ChoiceField(label="Stage", choices=CheckStage.choices, widget=forms.RadioSelect)
    told_attendance_required = _yes_no("Has anyone told the client they must attend?")
    sanction_mentioned = _yes_no("Has anyone mentioned a sanction or an effect on benefits?")
    feels_free_to_stop = _yes_no("Does the client feel free to stop at any time?")
    goals_set_by_client = _yes_no("Are the goals of therapy the client's own?")
    employment_goal_raised_by = forms.ChoiceField(label="Who raised employment as a goal?", choices=GoalRaisedBy.choices,
                                                  widget=forms.RadioSelect)  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("checked_at", now_for_input())


WITHDRAW_USES, WITHDRAW_THERAPY = "uses", "therapy"


class WithdrawalForm(forms.Form):
    what = forms.ChoiceField(
        label="What does the client want to withdraw?",
        choices=[(WITHDRAW_USES, "One or more uses of their information (therapy carries on)"),
                 (WITHDRAW_THERAPY, "Therapy altogether (the episode ends)")],
        widget=forms.RadioSelect,
    )  # fmt: skip
    scopes = forms.MultipleChoiceField(label="Uses to withdraw", required=False, widget=forms.CheckboxSelectMultiple,
                                       help_text="Only for withdrawing uses. Therapy itself is withdrawn with the other choice.")  # fmt: skip
    withdrawn_at = forms.DateTimeField(label="When", widget=DATETIME_INPUT, input_formats=DATETIME_FORMATS)
    reason = forms.ChoiceField(label="Reason the client gave", choices=WithdrawalReason.choices, widget=forms.RadioSelect)

    def __init__(self, *args, in_force=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["scopes"].choices = [(s, SCOPE_WORDING[s]) for s in in_force if s != ConsentScope.TREATMENT]
        if not self.is_bound:
            self.initial.setdefault("withdrawn_at", now_for_input())


class DischargeForm(forms.Form):
    discharged_on = forms.DateField(label="Date of discharge", widget=DATE_INPUT, input_formats=["%Y-%m-%d"])
    reason = forms.ChoiceField(label="Reason", choices=DischargeReason.choices, widget=forms.RadioSelect)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("discharged_on", timezone.localdate())


class DeclineForm(forms.Form):
    declined_on = forms.DateField(label="Date the client decided not to go ahead", widget=DATE_INPUT, input_formats=["%Y-%m-%d"])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("declined_on", timezone.localdate())


class AssignForm(forms.Form):
    therapist = forms.ChoiceField(label="Therapist to assign")

    def __init__(self, *args, clinicians=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["therapist"].choices = [("", "Choose a therapist")] + [(u.username, u.username) for u in clinicians]


class BreakGlassForm(forms.Form):
    referral = forms.CharField(label="Referral ID", max_length=64, help_text="The referral's ID, as given to you (a UUID).",
                               widget=forms.TextInput(attrs={"spellcheck": "false"}))  # fmt: skip
    reason = forms.CharField(label="Reason", max_length=500, widget=forms.Textarea,
                             help_text="For example, a safeguarding concern. The reason is logged and the data-protection officer is alerted.")  # fmt: skip


class GroupDispositionForm(forms.Form):
    group = forms.CharField(widget=forms.HiddenInput, max_length=200)
    up_to = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    disposition = forms.ChoiceField(label="Decision", choices=[], widget=forms.RadioSelect)
    note = forms.CharField(label="Note", max_length=4000, widget=forms.Textarea)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["disposition"].choices = Disposition.choices


class LogFilterForm(forms.Form):
    actor = forms.CharField(label="Actor (username or id)", max_length=150, required=False)
    referral = forms.UUIDField(label="Referral ID", required=False,
                               error_messages={"invalid": "Give a referral ID (a UUID such as 5b7c1f0e-...)."})  # fmt: skip
    action = forms.ChoiceField(label="Action", choices=[("", "Any")] + Action.choices, required=False)
    outcome = forms.ChoiceField(label="Outcome", choices=[("", "Any")] + Outcome.choices, required=False)
    organisation_kind = forms.ChoiceField(label="Actor's organisation", choices=[("", "Any")] + OrganisationKind.choices,
                                          required=False)  # fmt: skip
    occurred_after = forms.DateField(label="From", required=False, widget=DATE_INPUT, input_formats=["%Y-%m-%d"])
    occurred_before = forms.DateField(label="To", required=False, widget=DATE_INPUT, input_formats=["%Y-%m-%d"])


class ReferralIdForm(forms.Form):
    referral = forms.UUIDField(
        label="Referral ID", error_messages={"invalid": "Give a referral ID (a UUID such as 5b7c1f0e-...)."}
    )


class PeriodForm(forms.Form):
    period = forms.ChoiceField(label="Period")

    def __init__(self, *args, periods=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["period"].choices = list(periods)
