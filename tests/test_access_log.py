"""The access log's own rules: no identifiers in any event, FHIR AuditEvents that validate, and the hash itself."""

import uuid
from unittest import mock

import pytest
from django.db import transaction
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from consent.access import log
from consent.access.log import AccessContext, EventDraft, record_access
from consent.access.models import AccessEvent, Action, Outcome
from tests.conftest import PASSWORD, api_client, make_referral, postgres_only

real_actor_fields = log._actor_fields

# ---- no NHS number or local reference in any event ---------------------------------------------------------

NHS_NUMBER, SECOND_NHS_NUMBER = "9434765919", "9434765870"
SPELLINGS = (NHS_NUMBER, "943 476 5919", "943-476-5919", SECOND_NHS_NUMBER, "943 476 5870")
LOCAL_REFERENCES = ("KTT-000123", "KTT-000456", "MAPLE", "MWS-000001")


def _realistic_session(world):
    """A day of work, including people typing identifiers where ids, queries and reasons go."""
    therapist, lead = api_client(world.therapist), api_client(world.other_team_lead)
    created = therapist.post(
        "/api/v1/referrals/",
        {"client": {"local_reference": "KTT-000456", "nhs_number": "943 476 5870", "year_of_birth": 1990},
         "site": world.site.pk, "referred_on": "2026-09-14", "source_of_referral": "B1",
         "how_heard": "work_coach_suggested", "pathway": "signposted_by_work_coach"},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201
    make_referral(world.therapist, world.site, local_reference="MAPLE")
    referral = world.referral
    therapist.get(f"/api/v1/referrals/{referral.pk}/")
    # Identifiers typed into the parameters that exist, and into ones that do not (refused with a 400).
    therapist.get("/api/v1/referrals/?search=KTT-000123&status=awaiting_consent")
    therapist.get("/api/v1/referrals/?local_reference=MAPLE")
    therapist.get("/api/v1/referrals/?search=943%20476%205919")
    therapist.get("/api/v1/referrals/?search=KTT-000123&nhs_number=9434765919&q=MAPLE&status=active")
    therapist.get("/api/v1/referrals/?KTT-000123=1&note=943%20476%205919")
    therapist.get(f"/api/v1/referrals/{NHS_NUMBER}/")
    therapist.get("/api/v1/referrals/KTT-000123/")
    therapist.get("/api/v1/referrals/ktt-000123/")
    therapist.get("/api/v1/referrals/maple/")
    therapist.get(f"/api/v1/referrals/{referral.pk}/", HTTP_X_REQUEST_ID="KTT-000123")
    therapist.get(f"/api/v1/referrals/{referral.pk}/", HTTP_X_REQUEST_ID="MAPLE")
    reason = "Safeguarding: KTT-000123 (NHS 943 476 5919) disclosed risk; see also KTT-000456 and maple, 9434765870"
    assert lead.post(f"/api/v1/referrals/{referral.pk}/break-glass/", {"reason": reason}, format="json").status_code == 200
    lead.post("/api/v1/referrals/KTT-000123/break-glass/", {"reason": reason}, format="json")
    api_client(world.work_coach).get("/api/v1/referrals/KTT-000123/")
    api_client(world.work_coach).get(f"/api/v1/referrals/?nhs={NHS_NUMBER}")
    api_client(world.other_provider_therapist).get("/api/v1/referrals/MWS-000001/?ref=MWS-000001")
    api_client().post("/api/v1/auth/token/", {"username": "therapist", "password": "KTT-000123"}, format="json")
    api_client().post("/api/v1/auth/token/", {"username": NHS_NUMBER, "password": PASSWORD}, format="json")
    api_client(world.dpo).get(f"/api/v1/referrals/{referral.pk}/subject-access-export/?why=KTT-000123")
    api_client(world.dpo).get(f"/api/v1/referrals/{referral.pk}/subject-access-export/")


def test_no_event_contains_an_nhs_number_or_a_local_reference(world):
    _realistic_session(world)

    events = list(AccessEvent.objects.values())
    assert len(events) > 20
    assert any(e["action"] == "break_glass" and e["outcome"] == "allowed" for e in events)
    for event in events:
        text = " ".join(str(value) for value in event.values())
        squeezed = text.replace(" ", "").replace("-", "")
        for spelling in SPELLINGS:
            assert spelling not in text, (spelling, event)
            assert spelling.replace(" ", "") not in squeezed, (spelling, event)
        for reference in LOCAL_REFERENCES:
            assert reference.lower() not in text.lower(), (reference, event)


def test_the_break_glass_reason_is_kept_with_the_identifiers_withheld(world):
    _realistic_session(world)

    event = AccessEvent.objects.get(action="break_glass", outcome="allowed")
    assert event.purpose.startswith("Safeguarding: [withheld] (NHS [withheld]) disclosed risk; see also [withheld]")
    assert event.client_pseudonym == world.referral.client_id


@pytest.mark.parametrize(
    ("path", "logged"),
    [("/api/v1/referrals/5b7c1f0e-8f0d-4c7a-9a55-3f0f6d1c2b7e/access-history/",
      "/api/v1/referrals/5b7c1f0e-8f0d-4c7a-9a55-3f0f6d1c2b7e/access-history/"),
     ("/api/v1/referrals/?page=2&status=active&referred_after=2026-01-01", "/api/v1/referrals/?page=2&status=active&referred_after=2026-01-01"),
     ("/api/v1/referrals/9434765919/", "/api/v1/referrals/[withheld]/"),
     ("/api/v1/referrals/ktt-12a/", "/api/v1/referrals/[withheld]/"),
     ("/api/v1/referrals/?q=KTT-000123", "/api/v1/referrals/?q=[withheld]"),
     ("/api/v1/referrals/?ktt-000123=1", "/api/v1/referrals/?[withheld]")],
)  # fmt: skip
def test_paths_keep_route_words_and_ids_and_withhold_the_rest(path, logged):
    assert log.safe_path(path) == logged


# ---- FHIR R4 AuditEvent -------------------------------------------------------------------------------------


def test_the_log_as_fhir_is_a_bundle_of_audit_events_that_validates_against_r4b(world):
    _realistic_session(world)
    api_client(world.lead).post(f"/api/v1/referrals/{world.referral.pk}/assignments/", {"therapist": "unassigned"}, format="json")
    api_client().post("/api/v1/auth/token/", {"username": "therapist", "password": PASSWORD}, format="json")
    kent = AccessEvent.objects.filter(chain=world.kent)

    response = api_client(world.dpo).get("/api/v1/access-events/?format=fhir&page_size=200")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    bundle = Bundle.model_validate(body)
    assert bundle.type == "searchset"
    assert bundle.total == kent.count() == len(bundle.entry)
    events = [AuditEvent.model_validate(entry["resource"]) for entry in body["entry"]]
    actions = {sub.code for event in events for sub in event.subtype if sub.system.endswith("access-action")}
    assert {"read", "list", "create", "break_glass", "sign_in", "sign_in_failed", "export", "grant"} <= actions
    glass = next(e for e in body["entry"] if e["resource"]["subtype"][0]["code"] == "break_glass")["resource"]
    assert glass["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"
    denied = [e["resource"] for e in body["entry"] if e["resource"]["outcomeDesc"] == "denied"]
    assert denied and {d["outcome"] for d in denied} == {"4"}
    # An allowed read of a referral names its client, by pseudonym, as the patient entity.
    read = next(
        e["resource"] for e in body["entry"] if e["resource"]["subtype"][0]["code"] == "read" and e["resource"]["outcome"] == "0"
    )
    patient = next(entity for entity in read["entity"] if entity.get("role", {}).get("code") == "1")
    assert patient["what"]["identifier"]["value"] in {str(c) for c in kent.values_list("client_pseudonym", flat=True)}


def test_the_fhir_bundle_pages_with_links(world):
    for _ in range(3):
        api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")

    body = api_client(world.dpo).get("/api/v1/access-events/?format=fhir&page_size=2").json()

    Bundle.model_validate(body)
    assert len(body["entry"]) == 2
    relations = {link["relation"]: link["url"] for link in body["link"]}
    assert "format=fhir" in relations["next"] and "page=2" in relations["next"]
    second = api_client(world.dpo).get(relations["next"]).json()
    assert {e["fullUrl"] for e in second["entry"]}.isdisjoint({e["fullUrl"] for e in body["entry"]})


# ---- the hash and the chain ---------------------------------------------------------------------------------


def _values(**overrides):
    values = {name: "" for name in log.HASHED_FIELDS}
    values.update(chain_id=1, seq=1, occurred_at=log.timezone.now(), actor_id=7, actor_organisation_id=1, client_pseudonym=uuid.uuid4(),
                  referral_id=uuid.uuid4(), status=200, prev_hash=log.GENESIS_HASH, action="read", outcome="allowed")  # fmt: skip
    values.update(overrides)
    return values


@pytest.mark.parametrize("name", log.HASHED_FIELDS)
def test_the_hash_covers_every_field(name):
    values = _values()
    changed = dict(values)
    changed[name] = {"seq": 2, "chain_id": 2, "actor_id": 8, "actor_organisation_id": 2, "status": 404,
                     "occurred_at": values["occurred_at"] + log.timedelta(microseconds=1),
                     "client_pseudonym": uuid.uuid4(), "referral_id": uuid.uuid4()}.get(name, "x")  # fmt: skip

    assert log.event_hash(changed) != log.event_hash(values)
    assert log.event_hash(dict(values)) == log.event_hash(values)


@pytest.mark.parametrize(
    "shared_names",
    [
        (),
        ("chain_id", "occurred_at", "actor_id", "actor_name", "request_id", "method", "path", "client_request_id"),
        tuple(name for name in log.HASHED_FIELDS if name != "seq"),
    ],
)
@pytest.mark.parametrize("client_request_id", ["", None, "abc-123"])
def test_a_write_encodes_its_shared_fields_once_to_the_same_bytes(shared_names, client_request_id):
    # What a write hashes must be canonical_encoding's bytes exactly, or its chain would never verify.
    values = _values(actor_name='ann "o\u2019brien" \\ \u00e9', purpose="line\nbreak", actor_id=None, status=None,
                     client_pseudonym=None, client_request_id=client_request_id)  # fmt: skip
    encoding = log.SharedEncoding({name: values[name] for name in shared_names})

    for seq in (1, 2, 10**12):
        assert encoding.of({**values, "seq": seq}) == log.canonical_encoding({**values, "seq": seq})


def test_a_write_sharing_one_optional_field_and_varying_another_hashes_canonical_bytes(monkeypatch):
    # Should a second optional field ever join client_request_id, a write sharing one and varying the other must
    # still hash every field canonical_encoding does, in its order.
    monkeypatch.setattr(log, "HASHED_FIELDS", (*log.HASHED_FIELDS, "later_field"))
    monkeypatch.setattr(log, "OPTIONAL_HASHED_FIELDS", frozenset({*log.OPTIONAL_HASHED_FIELDS, "later_field"}))
    values = _values(client_request_id="abc-123")
    encoding = log.SharedEncoding({"chain_id": 1, "client_request_id": "abc-123"})

    for later in ("", "x", None):
        event = {**values, "later_field": later}
        assert encoding.of(event) == log.canonical_encoding(event)
        assert b"abc-123" in encoding.of(event)


def test_a_column_of_equal_but_different_values_is_converted_value_by_value():
    # 1 and True are the same key to a dict, not the same value to store or encode.
    assert log._converted((1, True, 1, False, 0), repr) == ("1", "True", "1", "False", "0")
    assert not log._one_value((1, True)) and not log._one_value((0, False)) and log._one_value((3, 3))


@postgres_only
def test_a_value_too_long_for_its_column_is_refused_never_cut_short(world):
    # The insert must store exactly what was hashed: a value longer than its column fails the write whole.
    drafts = [EventDraft(chain=world.kent, action=Action.READ, outcome=Outcome.ALLOWED, status=200, object_type="referral")] * 2
    context = AccessContext.for_command(world.therapist, "test")
    before = AccessEvent.objects.count()
    with pytest.raises(log.AccessLogUnavailable), transaction.atomic():
        with mock.patch.object(log, "_actor_fields", lambda user: {**real_actor_fields(user), "actor_name": "a" * 151}):
            record_access(context, drafts)

    assert AccessEvent.objects.count() == before
    assert log.verify_chain(organisation_ids=[world.kent.pk]).verified


def test_each_event_links_to_the_one_before_it(world):
    events = list(AccessEvent.objects.filter(chain=world.kent).order_by("seq"))
    api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    new = AccessEvent.objects.filter(chain=world.kent).latest("seq")

    assert new.seq == events[-1].seq + 1
    assert new.prev_hash == events[-1].hash
    assert new.hash == log.event_hash({name: getattr(new, name) for name in log.HASHED_FIELDS})
    assert events[0].prev_hash == log.GENESIS_HASH


@pytest.mark.parametrize("events", [1, 3])
def test_any_text_is_stored_exactly_as_it_was_hashed(world, events):
    # Written in one statement (on PostgreSQL the rows travel as JSON text): every character must come back as hashed.
    purpose = 'Sécurité 😀 "quoted" back\\slash\nnew line\ttab \u2028 ' + "x" * 400
    drafts = [
        EventDraft(chain=world.kent, action=Action.READ, outcome=Outcome.ALLOWED, status=200, object_type="referral",
                   object_id=str(world.referral.pk), client_pseudonym=world.referral.client_id,
                   referral_id=world.referral.pk, purpose=purpose)
        for _ in range(events)
    ]  # fmt: skip
    with transaction.atomic():
        written = record_access(AccessContext.for_command(world.therapist, "test"), drafts)

    stored = list(AccessEvent.objects.filter(pk__in=AccessEvent.objects.filter(chain=world.kent).order_by("-seq")[:events]))
    assert sorted(e.purpose for e in stored) == [purpose[:500]] * events
    assert sorted((e.seq, e.hash, e.occurred_at) for e in stored) == [(e.seq, e.hash, e.occurred_at) for e in written]
    assert log.verify_chain(organisation_ids=[world.kent.pk]).verified


def test_events_are_written_only_inside_the_transaction_of_the_access(world):
    draft = EventDraft(chain=world.kent, action=Action.READ, outcome=Outcome.ALLOWED, status=200)
    context = AccessContext.for_command(world.therapist, "test")
    connection = transaction.get_connection()
    # The test itself runs in a transaction; leave it for a moment to try a write outside any.
    saved = connection.in_atomic_block
    connection.in_atomic_block = False
    try:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            record_access(context, [draft])
    finally:
        connection.in_atomic_block = saved


def test_chain_heads_are_published_per_organisation(world):
    heads = log.chain_heads([world.kent.pk, world.medway.pk])

    for organisation in (world.kent, world.medway):
        last = AccessEvent.objects.filter(chain=organisation).latest("seq")
        assert heads[str(organisation.pk)] == {"seq": last.seq, "head_hash": last.hash}
