"""Every page costs the same number of queries whatever the data size: measured at 10 and at 200 referrals."""

from datetime import date

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from consent.access import firewall
from consent.access.log import AccessContext, verify_chain
from tests.conftest import give_consent, intake_check, make_referral


def _grow(world, upto: int) -> None:
    """Referrals for the therapist (consented, checked), and for each a refused attempt by the work coach (an alert)."""
    from consent.models import Referral

    have = Referral.objects.filter(provider=world.kent).count()
    for n in range(have, upto):
        referral = make_referral(
            world.therapist, world.site, local_reference=f"KTT-Q{n:05d}", referred_on=date(2026, 7, 1 + n % 28)
        )
        if n % 2:
            give_consent(world.therapist, referral, world.template)
            intake_check(world.therapist, referral)
        with transaction.atomic():
            try:
                firewall.open_referral(
                    AccessContext.for_command(world.work_coach, "test"), referral.pk, purpose=firewall.Purpose.VIEW
                )
            except firewall.ReferralNotFound:
                pass
    # As production runs after its nightly verification (and the benchmark measures): the report resumes the
    # chain check from the last verified checkpoint, so its cost is the events since, not the data size.
    verify_chain(organisation_ids=[world.kent.pk, world.medway.pk])


def _pages(world) -> list[tuple[str, str]]:
    r = world.referral.pk
    return [
        ("therapist", "/clients/"), ("therapist", "/clients/?q=KTT-Q"), ("therapist", "/clients/?page=2"),
        ("therapist", "/clients/new/"), ("therapist", f"/clients/{r}/"), ("therapist", f"/clients/{r}/consent/"),
        ("therapist", f"/clients/{r}/voluntariness-check/"), ("therapist", f"/clients/{r}/withdraw/"),
        ("therapist", f"/clients/{r}/discharge/"), ("therapist", f"/clients/{r}/receipt/"),
        ("lead", "/clients/"), ("lead", f"/clients/{r}/assignments/"), ("lead", "/break-glass/"),
        ("dpo", "/dpo/alerts/"), ("dpo", "/dpo/log/"), ("dpo", "/dpo/log/?outcome=denied"), ("dpo", "/dpo/chain/"),
        ("dpo", "/dpo/subject-access/"), ("dpo", f"/dpo/subject-access/{r}/"),
        ("reviewer", "/reports/"), ("reviewer", f"/reports/{world.pilot.pk}/?period=2026-Q3"),
        ("reviewer", f"/reports/{world.pilot.pk}/csv/?period=2026"),
        ("work_coach", "/no-client-data/"), ("work_coach", "/clients/"), ("anonymous", "/sign-in/"),
    ]  # fmt: skip


def _count(world, role: str, path: str) -> tuple[int, int]:
    client = Client()
    user = world.user(role)
    if user is not None:
        client.force_login(user)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)
    return response.status_code, len(queries)


@pytest.mark.django_db
def test_every_page_costs_the_same_queries_at_10_and_200_referrals(world):
    give_consent(world.therapist, world.referral, world.template)
    _grow(world, 10)
    small = {(role, path): _count(world, role, path) for role, path in _pages(world)}
    _grow(world, 200)
    large = {(role, path): _count(world, role, path) for role, path in _pages(world)}

    # Exactly the same: a list showing more clients than the hourly limit needs no count of those its user saw
    # earlier, but the count rides in the statement that locks the chain head, asked or not (consent.access.log).
    differing = [f"{role} {path}: {small[(role, path)]} at 10, {large[(role, path)]} at 200 (status, queries)"
                 for role, path in small if small[(role, path)] != large[(role, path)]]  # fmt: skip
    assert not differing, "\n".join(differing)
    assert all(status in (200, 403) for status, _ in large.values()), large
