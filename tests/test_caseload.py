"""Each user's caseload, which the firewall lists referrals from: equal to guardian's grants after every change,
recounted by a command that fails on any difference, and read in two queries whatever the caseload's size."""

import io
from datetime import date

import pytest
from django.core.management import CommandError, call_command
from guardian.shortcuts import assign_perm, remove_perm

from consent.access.caseload import rebuild_caseload
from consent.access.firewall import Purpose, assign_therapist, referrals_visible_to, unassign_therapist
from consent.access.log import AccessContext
from consent.access.models import CaseloadEntry
from consent.models import Referral
from tests.conftest import make_referral

LIST_ORDER = ("-referred_on", "-created_at", "pk")


def _entries(user) -> set[tuple[str, object]]:
    return set(CaseloadEntry.objects.filter(user=user).values_list("codename", "referral_id"))


def _visible(user, purpose=Purpose.VIEW) -> set:
    return set(referrals_visible_to(user, purpose).values_list("pk", flat=True))


def _recount_passes() -> None:
    out = io.StringIO()
    call_command("recount_caseload", stdout=out)
    assert "matches the grants" in out.getvalue()


def test_an_intake_enters_the_referral_in_its_recorders_and_its_team_leads_caseloads(world):
    referral = make_referral(world.therapist, world.site)
    both = {("view_referral", referral.pk), ("change_referral", referral.pk)}
    assert both <= _entries(world.therapist)
    assert both <= _entries(world.lead)  # through the team's group
    assert not _entries(world.unassigned_therapist) and not _entries(world.other_team_lead)
    _recount_passes()


def test_an_assignment_and_its_revocation_move_the_referral_in_and_out(world):
    context = AccessContext.for_command(world.lead, "test")
    assign_therapist(context, world.referral.pk, world.unassigned_therapist)
    assert world.referral.pk in _visible(world.unassigned_therapist, Purpose.CHANGE)
    _recount_passes()

    unassign_therapist(context, world.referral.pk, world.unassigned_therapist)
    assert _entries(world.unassigned_therapist) == set() and _visible(world.unassigned_therapist) == set()
    _recount_passes()


def test_a_direct_revocation_leaves_what_a_group_still_grants(world):
    remove_perm("consent.view_referral", world.lead, world.referral)  # the lead never had it directly: a no-op
    assign_perm("consent.view_referral", world.lead, world.referral)
    remove_perm("consent.view_referral", world.lead, world.referral)
    assert world.referral.pk in _visible(world.lead)  # still through the team's group
    _recount_passes()


def test_joining_and_leaving_a_team_group_adds_and_removes_its_referrals(world):
    group = world.team.group
    world.unassigned_therapist.groups.add(group)
    assert world.referral.pk in _visible(world.unassigned_therapist)
    _recount_passes()
    world.unassigned_therapist.groups.remove(group)
    assert _visible(world.unassigned_therapist) == set()
    group.user_set.add(world.unassigned_therapist)
    assert world.referral.pk in _visible(world.unassigned_therapist)
    group.user_set.clear()  # the lead leaves too
    assert _visible(world.unassigned_therapist) == set() and _visible(world.lead) == set()
    _recount_passes()


def test_a_group_grant_revoked_or_the_group_deleted_takes_its_referrals_away(world):
    group = world.team.group
    remove_perm("consent.view_referral", group, world.referral)
    assert world.referral.pk not in _visible(world.lead)
    assert world.referral.pk in _visible(world.lead, Purpose.CHANGE)
    _recount_passes()
    world.referral.team = None
    world.referral.save(update_fields=["team"])
    world.team.delete()
    group.delete()
    assert _visible(world.lead, Purpose.CHANGE) == set()
    _recount_passes()


def test_bulk_grants_enter_the_caseload_too(world):
    others = [make_referral(world.other_team_lead, world.site) for _ in range(3)]
    assign_perm("consent.view_referral", world.unassigned_therapist, Referral.objects.filter(pk__in=[r.pk for r in others]))
    assert _visible(world.unassigned_therapist) == {r.pk for r in others}
    _recount_passes()


def test_the_recount_fails_on_a_planted_missing_or_altered_entry(world):
    _recount_passes()
    planted = CaseloadEntry.objects.create(
        user=world.unassigned_therapist, codename="view_referral", referral=world.referral,
        provider=world.kent, referred_on=world.referral.referred_on, created_at=world.referral.created_at,
    )  # fmt: skip
    with pytest.raises(CommandError, match="1 not justified by any grant"):
        call_command("recount_caseload")
    planted.delete()

    CaseloadEntry.objects.filter(user=world.therapist, codename="view_referral", referral=world.referral).delete()
    with pytest.raises(CommandError, match="1 granted directly but missing"):
        call_command("recount_caseload")
    rebuild_caseload()
    _recount_passes()

    CaseloadEntry.objects.filter(user=world.lead, referral=world.referral).update(referred_on=date(2020, 1, 1))
    with pytest.raises(CommandError, match="granted through a group but missing"):
        call_command("recount_caseload")
    # An entry whose copy of the list order differs never shows another referral (on PostgreSQL, where the copies
    # are joined for the list's order, it hides its own).
    assert _visible(world.lead) <= {world.referral.pk, *Referral.objects.filter(team=world.team).values_list("pk", flat=True)}


def test_an_entry_without_a_grant_would_not_cross_providers(world):
    """Even a planted entry for another provider's referral shows nothing: the referral's own provider is checked."""
    CaseloadEntry.objects.create(
        user=world.therapist, codename="view_referral", referral=world.medway_referral, provider=world.kent,
        referred_on=world.medway_referral.referred_on, created_at=world.medway_referral.created_at,
    )  # fmt: skip
    assert world.medway_referral.pk not in _visible(world.therapist)
    assert referrals_visible_to(world.therapist).filter(pk=world.medway_referral.pk).count() == 0


def test_the_rebuild_gives_what_the_grants_give(world):
    for _ in range(3):
        make_referral(world.therapist, world.site)
    before = set(CaseloadEntry.objects.values_list("user_id", "codename", "referral_id", "provider_id", "referred_on"))
    rebuild_caseload()
    after = set(CaseloadEntry.objects.values_list("user_id", "codename", "referral_id", "provider_id", "referred_on"))
    # Kent's 4 referrals for their recorder and the team's lead, Medway's one for its recorder: view and change.
    assert before == after and len(after) == 2 * (4 + 4 + 1)


@pytest.mark.parametrize("role", ["therapist", "lead"])
def test_a_count_and_a_page_take_two_queries_however_many_referrals(world, role, django_assert_max_num_queries):
    for day in range(1, 8):
        make_referral(world.therapist, world.site, referred_on=date(2026, 9, day))
    user = world.user(role)
    user = type(user).objects.select_related("staff_profile__organisation").get(pk=user.pk)  # as a request has it
    with django_assert_max_num_queries(2):
        visible = referrals_visible_to(user).order_by(*LIST_ORDER)
        count, page = visible.count(), list(visible[:5])
    expected = list(Referral.objects.filter(recorded_by=world.therapist).order_by(*LIST_ORDER))
    assert count == len(expected) == 8
    assert page == expected[:5]


def test_a_narrowed_list_is_counted_on_its_rows(world):
    make_referral(world.therapist, world.site, referred_on=date(2026, 9, 1))
    visible = referrals_visible_to(world.therapist)
    assert visible.count() == 2
    assert visible.filter(referred_on=date(2026, 9, 1)).count() == 1
    assert visible.filter(referred_on=date(2020, 1, 1)).count() == 0
    base = Referral.objects.filter(referred_on=date(2026, 9, 1))
    assert referrals_visible_to(world.therapist, base=base).count() == 1
    assert visible.distinct().count() == 2 and visible[:1].count() == 1
