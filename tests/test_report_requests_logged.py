"""Report requests are accesses: each read, export and snapshot is an event, and a burst raises one alert."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from consent.access.models import AccessEvent
from tests.conftest import api_client

ALERTS = "/api/v1/access-events/alerts/"


def _report(user, pilot, query="period=2026-Q3"):
    return api_client(user).get(f"/api/v1/pilots/{pilot.pk}/compliance-report/?{query}")


def _report_events(**filters):
    return AccessEvent.objects.filter(action="report", **filters)


def _burst_alerts(user):
    response = api_client(user).get(ALERTS)
    assert response.status_code == 200
    return [a for a in response.json()["results"] if "report_burst" in a["alert_reasons"]]


def test_each_report_request_is_an_event_on_every_provider_chain_of_the_pilot(world):
    assert _report(world.reviewer, world.pilot, "period=2026-Q3&format=csv").status_code == 200
    events = _report_events(actor_id=world.reviewer.pk)
    # Who, which pilot, which period, which format: one event on each co-located provider's chain.
    assert sorted(events.values_list("chain_id", flat=True)) == sorted([world.kent.pk, world.medway.pk])
    for event in events:
        assert event.object_type == "compliance_report" and event.object_id == str(world.pilot.pk)
        assert event.purpose == f"pilot {world.pilot.pk}, period 2026-Q3, format csv"
        assert event.actor_name == "reviewer" and event.outcome == "allowed" and event.alert_reasons == ""


def test_snapshots_their_reads_and_verifications_are_events_too(world):
    lead = api_client(world.lead)
    frozen = lead.post(f"/api/v1/pilots/{world.pilot.pk}/compliance-reports/", {"period": "2026"}, format="json")
    assert frozen.status_code == 201
    snapshot = frozen.json()["id"]
    assert api_client(world.reviewer).get(f"/api/v1/compliance-reports/{snapshot}/?format=html").status_code == 200
    assert api_client(world.reviewer).get(f"/api/v1/compliance-reports/{snapshot}/verify/").status_code == 200
    kinds = list(_report_events(chain_id=world.kent.pk).order_by("seq").values_list("object_type", "purpose"))
    assert kinds == [
        ("compliance_report_snapshot", f"pilot {world.pilot.pk}, period 2026, format json"),
        ("compliance_report_snapshot_read", f"pilot {world.pilot.pk}, period 2026, format html"),
        ("compliance_report_snapshot_verify", f"pilot {world.pilot.pk}, period 2026, format json"),
    ]


def test_a_refused_or_bad_request_writes_no_report_event(world):
    assert _report(world.reviewer, world.pilot, "from=2026-07-01&to=2026-07-01").status_code == 400
    assert _report(world.therapist, world.pilot).status_code == 404
    assert not _report_events().exists()


def test_the_command_is_a_report_request_too(world, capsys):
    call_command("compliance_report", "--pilot", str(world.pilot.pk), "--period", "pilot", "--actor", "dpo")
    capsys.readouterr()
    events = _report_events(actor_name="dpo")
    assert events.count() == 2 and all("period pilot, format json" in e.purpose for e in events)


@pytest.fixture
def small_burst(settings):
    settings.REPORT_BURST_REQUESTS = 5
    settings.REPORT_BURST_MINUTES = 10


def test_many_requests_by_one_reader_raise_one_alert_per_burst_in_each_providers_queue(world, small_burst):
    for period in ("2026-07", "2026-08", "2026-09", "2026-Q3"):
        assert _report(world.reviewer, world.pilot, f"period={period}").status_code == 200
    assert _burst_alerts(world.dpo) == []
    # The fifth request within ten minutes completes the burst: one alert on each provider's chain.
    assert _report(world.reviewer, world.pilot, "period=2026").status_code == 200
    (kent,) = _burst_alerts(world.dpo)
    (medway,) = _burst_alerts(world.other_provider_dpo)
    assert kent["actor"]["name"] == medway["actor"]["name"] == "reviewer"
    # Carrying on is the same burst: no second alert.
    for period in ("2026-Q1", "2026-Q2", "pilot", "2026-05", "2026-06"):
        assert _report(world.reviewer, world.pilot, f"period={period}").status_code == 200
    assert len(_burst_alerts(world.dpo)) == 1 and len(_burst_alerts(world.other_provider_dpo)) == 1
    assert _report_events(actor_id=world.reviewer.pk, chain_id=world.kent.pk).count() == 10


def test_a_burst_is_counted_per_reader(world, small_burst):
    for reader in (world.reviewer, world.lead, world.dpo, world.other_provider_dpo):
        assert _report(reader, world.pilot).status_code == 200
    assert _burst_alerts(world.dpo) == []


def test_a_new_burst_after_a_quiet_window_raises_a_new_alert(world, small_burst, monkeypatch):
    for _ in range(5):
        assert _report(world.reviewer, world.pilot).status_code == 200
    assert len(_burst_alerts(world.dpo)) == 1
    # Eleven minutes later: the clock moves on (the log is append-only, so the events cannot be moved back).
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(minutes=11))
    for _ in range(4):
        assert _report(world.reviewer, world.pilot).status_code == 200
    assert len(_burst_alerts(world.dpo)) == 1
    assert _report(world.reviewer, world.pilot).status_code == 200
    assert len(_burst_alerts(world.dpo)) == 2
