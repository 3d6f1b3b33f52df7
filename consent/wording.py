"""What the client is told, in plain English: each acknowledgement and each use of their data.

Spoken to the client ("you"), for the consent screen and the printed receipt; the codes stay in the records.
"""

from consent.models import ConsentScope

ACKNOWLEDGEMENT_WORDING = {
    "attendance_is_optional": "Coming to therapy is your choice. You do not have to attend.",
    "no_effect_on_benefits": "Coming or not, and anything you say in therapy, has no effect on your benefits.",
    "service_separate_from_jobcentre": "This service is separate from the Jobcentre, even when we meet in the same building.",
    "nothing_shared_with_jobcentre": (
        "Nothing about you, not even whether you attend, is shared with the Jobcentre or your work coach."
    ),
    "free_to_withdraw": "You can stop at any time, for any reason, with no consequence.",
}

SCOPE_WORDING = {
    ConsentScope.TREATMENT: "Psychological therapy with us (needed to take part)",
    ConsentScope.DATA_SET_SUBMISSION: (
        "Sending details of your therapy to NHS England for the NHS Talking Therapies data set, as every NHS service does"
    ),
    ConsentScope.CONTACT_BY_PHONE: "Phoning you about your therapy",
    ConsentScope.CONTACT_BY_SMS: "Sending you text messages (SMS) about your therapy",
    ConsentScope.CONTACT_BY_LETTER: "Writing to you by letter about your therapy",
    ConsentScope.SHARE_WITH_GP: "Telling your GP how your therapy is going",
}

WHAT_THE_JOB_CENTRE_GETS = (
    "Nothing. The Jobcentre and your work coach get no information about you from us: not your name, not whether "
    "you came, not what you talked about."
)


def how_to_withdraw(provider_name: str) -> str:
    return (
        "You can withdraw at any time, from one use (for example text messages) or from therapy altogether, with no "
        f"effect on your benefits: tell your therapist, or write to the data protection officer of {provider_name}."
    )


def scope_wording(scope: str) -> str:
    return SCOPE_WORDING.get(scope, scope)
