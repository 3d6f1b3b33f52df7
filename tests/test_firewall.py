"""The firewall's rules: who reaches which referral for which purpose, and who can never be granted one.

One function (`referrals_visible_to`) answers for lists and details alike; these tests hold it to the
roles in docs/architecture.md ("Who uses it"), and hold the API to answering another provider's therapist exactly as it answers
for a referral that does not exist.
"""

import uuid

import pytest
from django.contrib.auth.models import AnonymousUser, Permission
from django.db import transaction
from guardian.shortcuts import assign_perm

from colocation.models import Role, User
from colocation.services import create_clinical_team, create_staff_member
from consent.access import firewall
from consent.access.firewall import Purpose, referrals_visible_to
from consent.access.log import AccessContext, verify_chain
from consent.access.models import AccessEvent, ReferralGroupObjectPermission, ReferralUserObjectPermission
from consent.models import Referral
from tests.conftest import PASSWORD, api_client, give_consent, make_referral

# ---- which referrals each role reaches, for each purpose -----------------------------------------------


def _visible(world, role, purpose=Purpose.VIEW) -> set:
    return set(referrals_visible_to(world.user(role), purpose).values_list("pk", flat=True))


@pytest.mark.parametrize(
    ("role", "purpose", "sees"),
    [
        ("therapist", Purpose.VIEW, {"referral"}),
        ("therapist", Purpose.CHANGE, {"referral"}),
        ("therapist", Purpose.ASSIGN, set()),
        ("therapist", Purpose.ACCESS_HISTORY, {"referral"}),
        ("therapist", Purpose.SUBJECT_ACCESS, set()),
        ("unassigned_therapist", Purpose.VIEW, set()),
        ("lead", Purpose.VIEW, {"referral"}),
        ("lead", Purpose.ASSIGN, {"referral"}),
        ("other_team_lead", Purpose.VIEW, set()),
        ("other_team_lead", Purpose.ASSIGN, set()),
        ("other_provider_therapist", Purpose.VIEW, {"medway_referral"}),
        ("dpo", Purpose.VIEW, set()),
        ("dpo", Purpose.CHANGE, set()),
        ("dpo", Purpose.FHIR_EXPORT, {"referral"}),
        ("dpo", Purpose.ACCESS_HISTORY, {"referral"}),
        ("dpo", Purpose.SUBJECT_ACCESS, {"referral"}),
        ("other_provider_dpo", Purpose.SUBJECT_ACCESS, {"medway_referral"}),
        ("reviewer", Purpose.VIEW, set()),
        ("admin", Purpose.VIEW, set()),
        ("admin", Purpose.SUBJECT_ACCESS, set()),
        ("anonymous", Purpose.VIEW, set()),
    ]
    + [("work_coach", purpose, set()) for purpose in Purpose],
)
def test_it_gives_each_role_exactly_the_referrals_its_purpose_allows(world, role, purpose, sees):
    if role == "anonymous":
        assert not referrals_visible_to(AnonymousUser(), purpose).exists()
        return
    expected = {getattr(world, name).pk for name in sees}
    assert _visible(world, role, purpose) == expected


def test_a_superuser_flag_and_model_permissions_grant_no_referral(world):
    # The admin holds is_superuser and every model permission; guardian's defaults would show it all.
    world.admin.user_permissions.add(*Permission.objects.filter(content_type__app_label="consent"))
    admin = User.objects.get(pk=world.admin.pk)
    assert admin.is_superuser and admin.has_perm("consent.view_referral")
    assert not referrals_visible_to(admin).exists()
    assert api_client(admin).get(f"/api/v1/referrals/{world.referral.pk}/").status_code == 404


def test_a_grant_to_a_non_clinical_role_gives_no_referral(world):
    # Object permissions alone are not enough: the firewall also asks for a clinical role at the provider.
    assign_perm("consent.view_referral", world.dpo, world.referral)
    assign_perm("consent.view_referral", world.reviewer, world.referral)
    assert not referrals_visible_to(world.dpo).exists()
    assert not referrals_visible_to(world.reviewer).exists()


def test_a_grant_across_providers_gives_no_referral(world):
    # A permission row pointing at another provider's referral (a mistake, or a forged row) is ignored.
    assign_perm("consent.view_referral", world.other_provider_therapist, world.referral)
    assert _visible(world, "other_provider_therapist") == {world.medway_referral.pk}
    assert api_client(world.other_provider_therapist).get(f"/api/v1/referrals/{world.referral.pk}/").status_code == 404


# ---- another provider's therapist ---------------------------------------------------------------------------


def test_another_providers_therapist_gets_the_same_404_as_for_a_referral_that_does_not_exist(world):
    client = api_client(world.other_provider_therapist)
    theirs = client.get(f"/api/v1/referrals/{world.referral.pk}/")
    missing = client.get(f"/api/v1/referrals/{uuid.uuid4()}/")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    assert str(world.referral.pk) not in theirs.content.decode()


def test_another_providers_therapist_never_sees_our_referrals_in_lists_or_counts(world):
    for _ in range(3):
        give_consent(world.therapist, make_referral(world.therapist, world.site), world.template)
    client = api_client(world.other_provider_therapist)
    kent = {str(pk) for pk in Referral.objects.filter(provider=world.kent).values_list("pk", flat=True)}
    assert len(kent) == 4
    for query in ("", f"?site={world.site.pk}", "?status=active", "?status=awaiting_consent", "?pathway=self_referral",
                  "?referred_after=2000-01-01", "?page_size=200", "?page=1"):  # fmt: skip
        response = client.get("/api/v1/referrals/" + query)
        assert response.status_code == 200, query
        body = response.json()
        ids = {row["id"] for row in body["results"]}
        assert not ids & kent, query
        assert body["count"] == len(ids), query
        assert body["count"] <= 1, query
    # Filtering by our site is not a way to learn how many referrals it has.
    assert client.get(f"/api/v1/referrals/?site={world.site.pk}").json()["count"] == 0


def test_every_refused_detail_is_logged_as_denied_on_the_referrals_chain(world):
    before = AccessEvent.objects.order_by("pk").values_list("pk", flat=True).last()
    assert api_client(world.other_provider_therapist).get(f"/api/v1/referrals/{world.referral.pk}/").status_code == 404
    event, trace = AccessEvent.objects.filter(pk__gt=before).order_by("chain_id")
    assert (event.outcome, event.action, event.chain_id, event.actor_id) == (
        "denied", "read", world.kent.pk, world.other_provider_therapist.pk,
    )  # fmt: skip
    assert event.referral_id == world.referral.pk and "denied" in event.alert_reasons
    # And on the actor's own chain, the trace any made-up id leaves: no client, no referral.
    assert (trace.chain_id, trace.outcome, trace.referral_id, trace.client_pseudonym) == (world.medway.pk, "denied", None, None)


def test_a_refused_write_is_logged_though_the_write_itself_is_rolled_back(world):
    give_consent(world.therapist, world.referral, world.template)
    before = AccessEvent.objects.filter(outcome="denied", chain=world.kent).count()
    response = api_client(world.other_provider_therapist).post(
        f"/api/v1/referrals/{world.referral.pk}/withdrawals/",
        {"withdrawn_at": "2026-10-01T09:00:00Z", "reason": "felt_pressured"},
        format="json",
    )
    assert response.status_code == 404
    assert AccessEvent.objects.filter(outcome="denied", chain=world.kent).count() == before + 1
    world.referral.refresh_from_db()
    assert world.referral.status == "active" and not world.referral.withdrawals.exists()


# ---- nobody may grant client data to a benefits-agency account ---------------------------------------------


def test_granting_a_referral_to_a_benefits_agency_account_raises(world):
    with pytest.raises(firewall.GrantRefused):
        assign_perm("consent.view_referral", world.work_coach, world.referral)
    with pytest.raises(firewall.GrantRefused):
        ReferralUserObjectPermission.objects.create(
            user=world.work_coach,
            permission=Permission.objects.get(codename="change_referral", content_type__app_label="consent"),
            content_object=world.referral,
        )
    with pytest.raises(firewall.GrantRefused):
        firewall.refuse_client_data_grant_to(world.work_coach)
    assert not ReferralUserObjectPermission.objects.filter(user=world.work_coach).exists()


def test_recording_or_assigning_as_a_benefits_agency_account_raises(world):
    with pytest.raises(firewall.GrantRefused):
        firewall.grant_on_creation(world.referral, world.work_coach)
    context = AccessContext.for_command(world.lead, "test")
    with pytest.raises(firewall.GrantRefused):
        firewall.assign_therapist(context, world.referral.pk, world.work_coach)
    assert not ReferralUserObjectPermission.objects.filter(user=world.work_coach).exists()


def test_granting_to_a_clinician_still_works(world):
    assign_perm("consent.view_referral", world.unassigned_therapist, world.referral)
    assert _visible(world, "unassigned_therapist") == {world.referral.pk}


# ---- creation grants ---------------------------------------------------------------------------------------


def test_a_new_referral_is_granted_to_its_recorder_and_their_teams_group_only(world):
    referral = make_referral(world.therapist, world.site)
    users = set(ReferralUserObjectPermission.objects.filter(content_object=referral).values_list("user__username", flat=True))
    groups = set(ReferralGroupObjectPermission.objects.filter(content_object=referral).values_list("group_id", flat=True))
    assert users == {"therapist"}
    assert groups == {world.team.group_id}
    assert referrals_visible_to(world.lead).filter(pk=referral.pk).exists()
    assert not referrals_visible_to(world.other_team_lead).filter(pk=referral.pk).exists()


def test_a_lead_who_joins_the_team_sees_its_referrals_and_one_who_leaves_does_not(world):
    newcomer = create_staff_member(username="new-lead", password=PASSWORD, organisation=world.kent,
                                   role=Role.CLINICAL_LEAD, team=world.team)  # fmt: skip
    assert _visible(world, "lead") == set(referrals_visible_to(newcomer).values_list("pk", flat=True))
    newcomer.groups.clear()
    assert not referrals_visible_to(newcomer).exists()


def test_a_referral_of_a_team_without_a_group_grant_is_seen_only_by_its_recorder(world):
    team = create_clinical_team(organisation=world.kent, name="Dover")
    solo = create_staff_member(username="dover-therapist", password=PASSWORD, organisation=world.kent,
                               role=Role.THERAPIST, team=team)  # fmt: skip
    referral = make_referral(solo, world.site)
    assert set(referrals_visible_to(solo).values_list("pk", flat=True)) == {referral.pk}
    assert not referrals_visible_to(world.lead).filter(pk=referral.pk).exists()


def test_a_refusal_rolled_back_with_its_transaction_is_written_again_and_the_chain_still_verifies(world):
    context = AccessContext.for_command(world.other_provider_therapist, "test")
    denied = AccessEvent.objects.filter(outcome="denied", chain=world.kent)
    with pytest.raises(firewall.ReferralNotFound) as refused:
        with transaction.atomic():  # as the request's transaction, or a service's, would be
            firewall.open_referral(context, world.referral.pk, purpose=Purpose.CHANGE)
    assert not denied.exists()
    firewall.log_refusal(refused.value.refusal)
    assert denied.count() == 1
    assert verify_chain(organisation_ids=[world.kent.pk]).verified


def test_granting_many_referrals_or_to_many_users_at_once_to_a_benefits_agency_account_raises(world):
    with pytest.raises(firewall.GrantRefused):
        assign_perm("consent.view_referral", world.work_coach, Referral.objects.all())
    with pytest.raises(firewall.GrantRefused):
        assign_perm("consent.view_referral", User.objects.filter(pk__in=[world.work_coach.pk, world.unassigned_therapist.pk]),
                    world.referral)  # fmt: skip
    assert not ReferralUserObjectPermission.objects.filter(user=world.work_coach).exists()


def test_an_account_switched_off_reaches_nothing_though_its_grants_remain(world):
    world.therapist.is_active = False
    world.therapist.save()
    assert ReferralUserObjectPermission.objects.filter(user=world.therapist).exists()
    assert not referrals_visible_to(world.therapist).exists()
    assert not firewall.may_act_on(world.therapist, world.referral, Purpose.CHANGE)
