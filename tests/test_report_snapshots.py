"""Snapshots: a period's report frozen with its SHA-256, author, time, code version and access-log heads."""

import hashlib
import json
from datetime import date

import pytest

from consent.access.log import chain_heads
from consent.reports import snapshots
from consent.reports.models import ComplianceReportSnapshot, SnapshotIsFrozen
from tests.conftest import api_client, behind_the_triggers, give_consent, make_referral
from tests.helpers import fix_record_keys


def _freeze(world, user=None, period="2026-Q3"):
    response = api_client(user or world.dpo).post(
        f"/api/v1/pilots/{world.pilot.pk}/compliance-reports/", {"period": period}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_it_freezes_the_published_report_with_its_hash_author_time_version_and_log_heads(world):
    live = api_client(world.reviewer).get(f"/api/v1/pilots/{world.pilot.pk}/compliance-report/?period=2026-Q3").json()
    # Taken after the live request, which is itself an access event on both chains.
    heads_before = chain_heads([world.kent.pk, world.medway.pk])
    frozen = _freeze(world, world.lead)

    stored = ComplianceReportSnapshot.objects.get(pk=frozen["id"])
    assert stored.created_by == world.lead and frozen["frozen_by"] == "lead"
    assert stored.period_label == "2026-Q3" and (stored.period_start, stored.period_end) == (date(2026, 7, 1), date(2026, 9, 30))
    assert frozen["report"] == live
    assert frozen["code_version"] and frozen["code_version"] == stored.code_version
    assert frozen["frozen_at"] == stored.created_at.isoformat()
    # The heads of both providers' chains as they were when it was frozen.
    assert frozen["access_log_heads"] == heads_before == stored.chain_heads
    assert set(heads_before) == {str(world.kent.pk), str(world.medway.pk)}
    # Anyone can recompute the hash from what the API returned.
    document = {key: frozen[key] for key in ("report", "frozen_at", "frozen_by", "code_version", "access_log_heads")}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode()).hexdigest() == frozen["sha256"] == stored.sha256


def test_it_keeps_the_snapshot_as_it_was_when_new_referrals_arrive(world):
    frozen = _freeze(world)
    for _ in range(8):
        give_consent(world.therapist, make_referral(world.therapist, world.site), world.template)
    # Record keys fixed so the live figure does not depend on the draw: 10 with cell key 10 publishes 10.
    fix_record_keys(1)
    again = api_client(world.reviewer).get(f"/api/v1/compliance-reports/{frozen['id']}/").json()
    assert again["report"] == frozen["report"]
    live = api_client(world.reviewer).get(f"/api/v1/pilots/{world.pilot.pk}/compliance-report/?period=2026-Q3").json()
    assert live["totals"]["referrals_received"] == 10
    assert again["report"]["totals"]["referrals_received"] == "*"


def test_verify_says_yes_for_an_untouched_snapshot(world):
    frozen = _freeze(world)
    result = api_client(world.reviewer).get(f"/api/v1/compliance-reports/{frozen['id']}/verify/").json()
    assert result["verified"] is True
    assert result["sha256"] == result["sha256_recomputed"] == frozen["sha256"]
    assert all(head["still_in_chain"] for head in result["access_log_heads"].values())


def test_verify_fails_when_the_stored_content_is_changed(world):
    frozen = _freeze(world)
    stored = ComplianceReportSnapshot.objects.get(pk=frozen["id"])
    # Someone with database access makes the pilot look better than it was.
    tampered = stored.content.replace('"not_voluntary":0', '"not_voluntary":"*"', 1)
    tampered = tampered.replace('"verdict":"met"', '"verdict":"not met"', 1)
    assert tampered != stored.content
    with behind_the_triggers():
        ComplianceReportSnapshot.objects.filter(pk=stored.pk).update(content=tampered)

    result = api_client(world.reviewer).get(f"/api/v1/compliance-reports/{frozen['id']}/verify/").json()
    assert result["verified"] is False
    assert result["sha256"] == frozen["sha256"]
    assert result["sha256_recomputed"] == hashlib.sha256(tampered.encode()).hexdigest() != frozen["sha256"]


def test_verify_fails_when_the_stored_hash_is_changed(world):
    frozen = _freeze(world)
    with behind_the_triggers():
        ComplianceReportSnapshot.objects.filter(pk=frozen["id"]).update(sha256="0" * 64)
    assert snapshots.verify_snapshot(ComplianceReportSnapshot.objects.get(pk=frozen["id"]))["verified"] is False


def test_a_snapshot_cannot_be_changed_or_deleted_through_the_model(world):
    frozen = _freeze(world)
    stored = ComplianceReportSnapshot.objects.get(pk=frozen["id"])
    stored.content = "{}"
    with pytest.raises(SnapshotIsFrozen):
        stored.save()
    with pytest.raises(SnapshotIsFrozen):
        stored.delete()
    assert ComplianceReportSnapshot.objects.get(pk=frozen["id"]).sha256 == frozen["sha256"]


def test_the_snapshot_endpoints_refuse_to_change_a_snapshot(world):
    frozen = _freeze(world)
    client = api_client(world.dpo)
    for method in ("put", "patch", "delete"):
        assert getattr(client, method)(f"/api/v1/compliance-reports/{frozen['id']}/", {}, format="json").status_code == 405


def test_it_records_the_configured_code_version(world, settings):
    settings.CODE_VERSION = "v1.4.2-release"
    snapshots.code_version.cache_clear()
    try:
        frozen = _freeze(world)
    finally:
        snapshots.code_version.cache_clear()
    assert frozen["code_version"] == "v1.4.2-release"


def test_the_snapshot_renders_as_html_and_csv_from_what_was_stored(world):
    frozen = _freeze(world)
    client = api_client(world.reviewer)
    html = client.get(f"/api/v1/compliance-reports/{frozen['id']}/?format=html")
    assert html.status_code == 200 and html["Content-Type"].startswith("text/html")
    assert frozen["sha256"] in html.content.decode()
    csv_text = client.get(f"/api/v1/compliance-reports/{frozen['id']}/?format=csv").content.decode()
    assert "figures,All sites,referrals_received,,*" in csv_text
