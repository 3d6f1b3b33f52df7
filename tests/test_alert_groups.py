"""The DPO's alert queue by actor and day: thirteen refusals from one session are one group and one decision."""

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from consent.access import firewall, selectors, services
from consent.access.log import AccessContext
from consent.access.models import AlertDisposition
from tests.conftest import api_client


def refused_attempts(user, referral, times: int) -> None:
    for _ in range(times):
        with transaction.atomic():
            try:
                firewall.open_referral(AccessContext.for_command(user, "test"), referral.pk, purpose=firewall.Purpose.VIEW)
            except firewall.ReferralNotFound:
                pass


def work_coach_group(world):
    return next(g for g in selectors.alert_groups_for_dpo(world.dpo) if g.actor_id == world.work_coach.pk)


def test_thirteen_refusals_of_one_work_coach_on_one_day_are_one_group(world):
    refused_attempts(world.work_coach, world.referral, 13)
    refused_attempts(world.unassigned_therapist, world.referral, 2)
    groups = {g.actor_name: g for g in selectors.alert_groups_for_dpo(world.dpo)}
    assert groups["workcoach"].alerts == 13 and groups["workcoach"].denied == 13
    assert groups["workcoach"].day == timezone.localdate()
    assert groups["unassigned"].alerts == 2


def test_one_disposition_decides_every_alert_of_the_group_each_with_its_own_record(world):
    refused_attempts(world.work_coach, world.referral, 13)
    group = work_coach_group(world)
    records = services.record_group_disposition(
        user=world.dpo, actor_id=group.actor_id, day=group.day, up_to_seq=group.last_seq, disposition="no_concern",
        note="One session; the account's manager was told.",
    )  # fmt: skip
    assert len(records) == 13 and AlertDisposition.objects.count() == 13
    assert not [g for g in selectors.alert_groups_for_dpo(world.dpo) if g.actor_id == world.work_coach.pk]


def test_an_alert_raised_after_the_dpo_looked_stays_in_the_queue(world):
    refused_attempts(world.work_coach, world.referral, 3)
    group = work_coach_group(world)
    refused_attempts(world.work_coach, world.referral, 1)
    services.record_group_disposition(user=world.dpo, actor_id=group.actor_id, day=group.day, up_to_seq=group.last_seq,
                                      disposition="no_concern", note="Seen.")  # fmt: skip
    assert work_coach_group(world).alerts == 1


def test_investigating_keeps_the_group_open(world):
    refused_attempts(world.work_coach, world.referral, 2)
    group = work_coach_group(world)
    services.record_group_disposition(user=world.dpo, actor_id=group.actor_id, day=group.day, up_to_seq=group.last_seq,
                                      disposition="investigating", note="Asked the Jobcentre manager.")  # fmt: skip
    assert work_coach_group(world).alerts == 2


def test_a_bad_decision_writes_nothing(world):
    refused_attempts(world.work_coach, world.referral, 2)
    group = work_coach_group(world)
    for disposition, note in (("fine", "x"), ("no_concern", "  ")):
        with pytest.raises(ValidationError):
            services.record_group_disposition(user=world.dpo, actor_id=group.actor_id, day=group.day,
                                              up_to_seq=group.last_seq, disposition=disposition, note=note)  # fmt: skip
    assert AlertDisposition.objects.count() == 0


def test_another_providers_dpo_cannot_decide_our_alerts(world):
    refused_attempts(world.unassigned_therapist, world.referral, 2)
    group = next(g for g in selectors.alert_groups_for_dpo(world.dpo) if g.actor_name == "unassigned")
    with pytest.raises(services.AlertNotFound):
        services.record_group_disposition(user=world.other_provider_dpo, actor_id=group.actor_id, day=group.day,
                                          up_to_seq=group.last_seq, disposition="no_concern", note="Not mine.")  # fmt: skip
    assert AlertDisposition.objects.count() == 0


def test_only_a_dpo_reads_or_decides_groups(world):
    from consent.access.selectors import NotADataProtectionOfficer

    for user in (world.therapist, world.lead, world.reviewer, world.admin):
        with pytest.raises(NotADataProtectionOfficer):
            selectors.alert_groups_for_dpo(user)


def test_the_api_decides_a_group_in_one_request(world):
    refused_attempts(world.work_coach, world.referral, 4)
    dpo = api_client(world.dpo)
    groups = dpo.get("/api/v1/access-events/alert-groups/").json()["results"]
    group = next(g for g in groups if g["actor"] == world.work_coach.pk)
    assert group["alerts"] == 4
    response = dpo.post("/api/v1/access-events/alert-groups/disposition/",
                        {"actor": group["actor"], "day": group["day"], "up_to": group["last_seq"], "disposition": "no_concern",
                         "note": "Refused, as it should be."}, format="json")  # fmt: skip
    assert response.status_code == 201 and response.json()["decided"] == 4
    assert AlertDisposition.objects.count() == 4
    again = dpo.post("/api/v1/access-events/alert-groups/disposition/",
                     {"actor": group["actor"], "day": group["day"], "up_to": group["last_seq"], "disposition": "no_concern",
                      "note": "Again."}, format="json")  # fmt: skip
    assert again.status_code == 404
