"""Intake: one POST records the client and the referral; each bad input is a 400 that names the field and
says what is accepted, and writes nothing. Also: the referral list costs the same queries at any size."""

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from guardian.models import GroupObjectPermission, UserObjectPermission

from consent.access.models import ReferralGroupObjectPermission, ReferralUserObjectPermission
from consent.models import Client, ConsentRecord, Referral, VoluntarinessCheck, Withdrawal
from tests.conftest import api_client, give_consent, intake_check, make_referral
from tests.helpers import intake_body

URL = "/api/v1/referrals/"
COUNTED = (
    Client, Referral, ConsentRecord, Withdrawal, VoluntarinessCheck,
    ReferralUserObjectPermission, ReferralGroupObjectPermission, UserObjectPermission, GroupObjectPermission,
)  # fmt: skip


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in COUNTED}


def test_it_creates_the_client_and_the_referral_in_one_post(world):
    before = counts()
    response = api_client(world.therapist).post(URL, intake_body(world), format="json")
    assert response.status_code == 201, response.json()
    payload = response.json()
    after = counts()
    assert after["Client"] == before["Client"] + 1
    assert after["Referral"] == before["Referral"] + 1
    # The recorder and their team's group get view and change on the new referral.
    assert after["ReferralUserObjectPermission"] == before["ReferralUserObjectPermission"] + 2
    assert after["ReferralGroupObjectPermission"] == before["ReferralGroupObjectPermission"] + 2
    referral = Referral.objects.select_related("client").get(pk=payload["id"])
    assert referral.client.local_reference == "KTT-000999"
    assert referral.client.nhs_number == "9434765919"
    assert referral.client.provider == world.kent
    assert referral.provider == world.kent
    assert referral.recorded_by == world.therapist
    assert payload["client"] == {
        "id": str(referral.client_id), "local_reference": "KTT-000999", "nhs_number": "9434765919", "year_of_birth": 1979,
    }  # fmt: skip
    assert payload["site"] == {"id": world.site.pk, "name": world.site.name}
    assert payload["referred_on"] == "2026-09-14"
    assert payload["source_of_referral"] == "B1"
    assert payload["how_heard"] == "work_coach_suggested"
    assert payload["pathway"] == "signposted_by_work_coach"
    assert payload["status"] == "awaiting_consent"
    assert payload["voluntariness"]["status"] == "unknown"
    assert payload["consents"] == [] and payload["withdrawals"] == [] and payload["voluntariness_checks"] == []
    assert payload["discharge"] is None
    # The new referral is then in the recorder's list.
    listed = api_client(world.therapist).get(URL).json()
    assert payload["id"] in {row["id"] for row in listed["results"]}


def test_it_accepts_an_nhs_number_written_with_spaces_and_stores_digits(world):
    response = api_client(world.therapist).post(URL, intake_body(world, client__nhs_number="943 476 5919"), format="json")
    assert response.status_code == 201, response.json()
    assert Client.objects.get(pk=response.json()["client"]["id"]).nhs_number == "9434765919"


def test_it_accepts_a_referral_without_the_optional_client_fields(world):
    data = intake_body(world)
    data["client"] = {"local_reference": "KTT-MIN-1"}
    response = api_client(world.therapist).post(URL, data, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["client"]["nhs_number"] == ""
    assert response.json()["client"]["year_of_birth"] is None


def test_it_reuses_the_client_a_provider_already_holds_under_that_reference(world):
    """A client who comes back is a new referral of the same pseudonymous client, not a second client."""
    before = counts()
    data = intake_body(world, client__local_reference="KTT-000123")  # world.referral's client
    response = api_client(world.therapist).post(URL, data, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["client"]["id"] == str(world.referral.client_id)
    assert counts()["Client"] == before["Client"]
    assert counts()["Referral"] == before["Referral"] + 1


def test_it_records_mandated_pathways_honestly_rather_than_refusing_them(world):
    for pathway in ("mandated_assessment", "benefit_condition"):
        data = intake_body(world, pathway=pathway, source_of_referral="M5", client__local_reference=f"KTT-{pathway}")
        response = api_client(world.therapist).post(URL, data, format="json")
        assert response.status_code == 201, response.json()
        assert response.json()["pathway"] == pathway
        assert response.json()["voluntariness"]["status"] == "not_voluntary"


# ---- every bad input: a 400 naming the field, saying what is accepted, writing nothing ----------------------

TOMORROW = "tomorrow"


def _bad_cases():
    """(id, changes to the body, path of the field in `errors`, words the message must contain)."""
    cases = [
        (
            "nhs_number_bad_check_digit",
            {"client__nhs_number": "9434765918"},
            ("client", "nhs_number"),
            ["check digit", "10 digits"],
        ),
        ("nhs_number_too_short", {"client__nhs_number": "943476591"}, ("client", "nhs_number"), ["10 digits"]),
        ("nhs_number_letters", {"client__nhs_number": "94347A5919"}, ("client", "nhs_number"), ["10 digits"]),
        ("source_unknown", {"source_of_referral": "Z9"}, ("source_of_referral",), ["'Z9'", "B1", "M5", "A1"]),
        ("source_lower_case", {"source_of_referral": "b1"}, ("source_of_referral",), ["B1"]),
        ("referred_on_future", {"referred_on": TOMORROW}, ("referred_on",), ["in the future", "on or before"]),
        ("referred_on_not_a_date", {"referred_on": "14/09/2026"}, ("referred_on",), ["YYYY"]),
        ("site_of_another_provider", {"site": "medway"}, ("site",), ["another provider", "your organisation's sites"]),
        ("site_unknown", {"site": 999_999}, ("site",), ["/api/v1/sites/"]),
        ("how_heard_unknown", {"how_heard": "radio"}, ("how_heard",), ["leaflet_or_poster", "found_themselves"]),
        ("pathway_unknown", {"pathway": "forced"}, ("pathway",), ["self_referral", "benefit_condition"]),
        (
            "year_of_birth_child",
            {"client__year_of_birth": timezone.localdate().year - 5},
            ("client", "year_of_birth"),
            ["adults"],
        ),
        ("local_reference_blank", {"client__local_reference": "   "}, ("client", "local_reference"), ["blank"]),
        ("status_sent", {"status": "active"}, ("status",), ["set by the service"]),
        ("unknown_field", {"colour": "blue"}, ("colour",), ["accepted fields", "source_of_referral"]),
        ("share_with_jobcentre_field", {"share_with_jobcentre": True}, ("share_with_jobcentre",), ["not permitted"]),
    ]
    for field in ("site", "referred_on", "source_of_referral", "how_heard", "pathway", "client"):
        cases.append((f"missing_{field}", {field: ...}, (field,), [f"{field} is required", "give"]))
    cases.append(
        ("missing_client_local_reference", {"client__local_reference": ...}, ("client", "local_reference"), ["required", "give"])
    )
    return cases


BAD = _bad_cases()


@pytest.mark.parametrize("changes, path, words", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_it_refuses_bad_input_naming_the_field_and_what_is_accepted_and_writes_nothing(world, changes, path, words):
    data = intake_body(world)
    for key, value in changes.items():
        if value == TOMORROW:
            value = (timezone.localdate() + timedelta(days=1)).isoformat()
        if value == "medway":
            value = world.medway_site.pk
        target, name = (data["client"], key.removeprefix("client__")) if key.startswith("client__") else (data, key)
        if value is ...:
            del target[name]
        else:
            target[name] = value
    client = api_client(world.therapist)
    before = counts()
    response = client.post(URL, data, format="json")
    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["detail"]
    messages = payload["errors"]
    for key in path:
        assert key in messages, (path, messages)
        messages = messages[key]
    text = " ".join(map(str, messages)) if isinstance(messages, list) else str(messages)
    for word in words:
        assert word in text, (word, text)
    assert counts() == before


def test_it_lists_every_problem_at_once(world):
    data = intake_body(world, referred_on=(timezone.localdate() + timedelta(days=3)).isoformat(), site=world.medway_site.pk,
                client__nhs_number="1234567890")  # fmt: skip
    before = counts()
    response = api_client(world.therapist).post(URL, data, format="json")
    assert response.status_code == 400
    assert {"site", "referred_on", "client"} <= set(response.json()["errors"])
    assert "nhs_number" in response.json()["errors"]["client"]
    assert counts() == before


def test_it_refuses_the_same_local_reference_with_a_different_nhs_number(world):
    data = intake_body(world, client__local_reference="KTT-000123", client__nhs_number="4010232137")
    before = counts()
    response = api_client(world.therapist).post(URL, data, format="json")
    assert response.status_code == 400
    assert "different NHS number" in str(response.json()["errors"]["client"]["nhs_number"])
    assert counts() == before


def test_it_accepts_a_referral_made_today(world):
    response = api_client(world.therapist).post(
        URL, intake_body(world, referred_on=timezone.localdate().isoformat()), format="json"
    )
    assert response.status_code == 201, response.json()


# ---- the list costs the same number of queries at any size -------------------------------------------------


def _list_queries(user) -> tuple[int, int]:
    client = api_client(user)
    client.get(URL)  # warm: the token row and any per-process caches
    with CaptureQueriesContext(connection) as captured:
        response = client.get(URL, {"page_size": 100})
    assert response.status_code == 200
    return len(captured.captured_queries), response.json()["count"]


def test_it_lists_5_and_50_referrals_in_the_same_number_of_queries(world, django_assert_max_num_queries):
    for _ in range(4):
        make_referral(world.therapist, world.site, referred_on=date(2026, 9, 1))
    few, listed = _list_queries(world.therapist)
    assert listed == 5
    for _ in range(45):
        make_referral(world.therapist, world.site, referred_on=date(2026, 9, 1))
    client = api_client(world.therapist)
    # The 50 access events are one INSERT on SQLite too (config.db.sqlite3 knows SQLite's real limit).
    with django_assert_max_num_queries(few):
        response = client.get(URL, {"page_size": 100})
    assert response.json()["count"] == 50
    assert len(response.json()["results"]) == 50
    # Every row carries its computed voluntariness, from the same queries.
    assert all(row["voluntariness"]["status"] == "unknown" for row in response.json()["results"])


def test_it_lists_with_consents_checks_and_withdrawals_without_a_query_per_row(world, django_assert_max_num_queries):
    def episode():
        referral = make_referral(world.therapist, world.site, referred_on=date(2026, 9, 1))
        give_consent(world.therapist, referral, world.template)
        intake_check(world.therapist, referral)
        return referral

    for _ in range(4):
        episode()
    few, listed = _list_queries(world.therapist)
    assert listed == 5
    for _ in range(45):
        episode()
    client = api_client(world.therapist)
    with django_assert_max_num_queries(few):
        response = client.get(URL, {"page_size": 100})
    statuses = [row["voluntariness"]["status"] for row in response.json()["results"]]
    assert statuses.count("voluntary") == 49 and statuses.count("unknown") == 1  # world.referral has no consent


def test_two_intakes_of_the_same_new_client_at_once_share_one_client(world, monkeypatch):
    """The second of two simultaneous intakes finds no client, then loses the race to insert it: no 500."""
    from consent import services

    first = api_client(world.therapist).post(URL, intake_body(world, client__local_reference="KTT-RACE"), format="json")
    assert first.status_code == 201
    original = services.Client.objects.filter
    looked: list = []

    def blind_lookup(*args, **kwargs):
        # The racing request's first look-up, made before the other request's client was there.
        queryset = original(*args, **kwargs)
        if kwargs.get("local_reference") == "KTT-RACE" and not looked:
            looked.append(True)
            return queryset.none()
        return queryset

    monkeypatch.setattr(services.Client.objects, "filter", blind_lookup)
    second = api_client(world.therapist).post(URL, intake_body(world, client__local_reference="KTT-RACE"), format="json")
    assert second.status_code == 201, second.content
    assert second.json()["client"]["id"] == first.json()["client"]["id"]
    assert Client.objects.filter(local_reference="KTT-RACE").count() == 1
