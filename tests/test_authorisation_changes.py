"""Every change to who may see what is an access event on the organisation's chain and an alert for its DPO:
an account's organisation, role, active, staff and superuser flags, groups and permissions, object-permission
rows on referrals, an organisation's kind and consent templates; made in the admin, the API, a command or the
ORM; written in the change's own transaction (no event, no change).
"""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection, transaction
from guardian.shortcuts import assign_perm, remove_perm

from colocation.models import Organisation, OrganisationKind, Role, StaffProfile, User
from consent.access.log import AccessLogUnavailable, verify_chain
from consent.access.models import AccessEvent, ReferralGroupObjectPermission, ReferralUserObjectPermission
from consent.models import ConsentTemplate
from tests.conftest import api_client
from tests.factories import ConsentTemplateFactory
from tests.helpers import ACCESS_LOG_DOWN, ACCESS_LOG_MENDED, admin_form, run_statements


@pytest.fixture
def changes(world):
    """The authorisation-change events written after this point, as (chain, object, purpose, actor) rows."""
    last = AccessEvent.objects.order_by("-pk").values_list("pk", flat=True).first()

    def written(**filters):
        rows = AccessEvent.objects.filter(pk__gt=last, **filters).order_by("pk")
        assert all("authorisation_change" in e.alert_reasons.split(",") for e in rows)
        return [(e.chain_id, f"{e.object_type}:{e.object_id}", e.purpose, e.actor_name) for e in rows]

    return written


def _alerted(world, dpo, purpose_part):
    alerts = api_client(dpo).get("/api/v1/access-events/alerts/?state=open").json()["results"]
    return [a for a in alerts if "authorisation_change" in a["alert_reasons"] and purpose_part in a["purpose"]]


@pytest.mark.parametrize(("flag", "value", "purpose"), [("is_superuser", True, "is_superuser false->true"),
                                                        ("is_staff", True, "is_staff false->true"),
                                                        ("is_active", False, "is_active true->false")])  # fmt: skip
def test_a_flag_changed_in_a_shell_is_an_event_and_an_alert_on_the_accounts_chain(world, changes, flag, value, purpose):
    setattr(world.therapist, flag, value)
    world.therapist.save()

    assert changes() == [(world.kent.pk, f"user:{world.therapist.pk}", purpose, "system")]
    assert _alerted(world, world.dpo, purpose)
    assert not _alerted(world, world.other_provider_dpo, purpose)


def test_a_save_that_changes_no_flag_writes_nothing(world, changes):
    world.therapist.first_name = "Sam"
    world.therapist.save()
    world.therapist.save(update_fields=["last_login"])
    assert changes() == []


def test_moving_an_account_to_another_provider_is_an_event_on_both_chains(world, changes):
    profile = world.unassigned_therapist.staff_profile
    profile.organisation, profile.team = world.medway, None
    profile.save()

    rows = changes()
    purpose = f"organisation {world.kent.pk}->{world.medway.pk}"
    assert rows == [(world.kent.pk, f"user:{world.unassigned_therapist.pk}", purpose, "system"),
                    (world.medway.pk, f"user:{world.unassigned_therapist.pk}", purpose, "system")]  # fmt: skip


def test_a_role_change_and_a_new_or_removed_profile_are_events(world, changes):
    profile = world.unassigned_therapist.staff_profile
    profile.role = Role.CLINICAL_LEAD
    profile.save()
    newcomer = User.objects.create(username="newcomer")
    StaffProfile.objects.create(user=newcomer, organisation=world.medway, role=Role.THERAPIST)
    StaffProfile.objects.filter(user=newcomer).delete()

    assert [row[2] for row in changes()] == [
        "role therapist->clinical_lead",
        f"organisation none->{world.medway.pk}; role none->therapist",
        f"organisation {world.medway.pk}->none; role therapist->none",
    ]


def test_group_membership_either_way_round_is_an_event(world, changes):
    group = world.team.group
    world.unassigned_therapist.groups.add(group)
    group.user_set.remove(world.unassigned_therapist)
    world.lead.groups.clear()

    account = f"user:{world.unassigned_therapist.pk}"
    assert changes() == [
        (world.kent.pk, account, f"groups +{group.pk}", "system"),
        (world.kent.pk, account, f"groups -{group.pk}", "system"),
        (world.kent.pk, f"user:{world.lead.pk}", f"groups -{group.pk}", "system"),
    ]


def test_model_permissions_given_to_an_account_are_an_event(world, changes):
    permission = Permission.objects.get(codename="view_referral")
    world.therapist.user_permissions.add(permission)
    assert changes() == [(world.kent.pk, f"user:{world.therapist.pk}", f"permissions +{permission.pk}", "system")]


def test_an_object_permission_written_outside_the_firewall_is_a_grant_event_with_an_alert(world, changes):
    referral = world.referral
    assign_perm("consent.view_referral", world.unassigned_therapist, referral)
    remove_perm("consent.view_referral", world.unassigned_therapist, referral)
    other = Group.objects.create(name="someone's own group")
    assign_perm("consent.change_referral", other, referral)
    ReferralGroupObjectPermission.objects.filter(group=other).delete()

    rows = AccessEvent.objects.filter(referral_id=referral.pk, action__in=("grant", "revoke")).order_by("pk")
    assert [(e.action, e.purpose, e.client_pseudonym, e.chain_id) for e in rows] == [
        ("grant", f"view_referral granted to user {world.unassigned_therapist.pk}", referral.client_id, world.kent.pk),
        ("revoke", f"view_referral revoked from user {world.unassigned_therapist.pk}", referral.client_id, world.kent.pk),
        ("grant", f"change_referral granted to group {other.pk}", referral.client_id, world.kent.pk),
        ("revoke", f"change_referral revoked from group {other.pk}", referral.client_id, world.kent.pk),
    ]
    assert all("authorisation_change" in e.alert_reasons for e in rows)


def test_grants_in_bulk_are_events_too(world, changes):
    referrals = [world.referral]
    assign_perm(
        "consent.view_referral", world.unassigned_therapist, type(world.referral).objects.filter(pk__in=[r.pk for r in referrals])
    )
    assert [row[2] for row in changes()] == [f"view_referral granted to user {world.unassigned_therapist.pk}"]


def test_the_firewalls_own_grants_are_logged_once_as_its_operations_and_raise_no_alert(world, changes):
    response = api_client(world.lead).post(
        f"/api/v1/referrals/{world.referral.pk}/assignments/", {"therapist": "unassigned"}, format="json"
    )
    assert response.status_code == 201
    events = AccessEvent.objects.filter(referral_id=world.referral.pk, action="grant")
    assert [(e.actor_name, e.purpose, e.alert_reasons) for e in events] == [("lead", "assigned unassigned", "")]
    assert ReferralUserObjectPermission.objects.filter(user=world.unassigned_therapist).count() == 2


def test_an_organisations_kind_changed_is_an_event(world, changes):
    commissioner = Organisation.objects.create(name="Kent ICB", kind=OrganisationKind.COMMISSIONER)
    commissioner.kind = OrganisationKind.OTHER
    commissioner.save()
    # An organisation of no provider's: every provider's DPO hears of it.
    assert {(row[0], row[2]) for row in changes()} == {
        (world.kent.pk, "kind commissioner->other"),
        (world.medway.pk, "kind commissioner->other"),
    }


def test_consent_template_changes_are_events_for_every_providers_dpo(world, changes):
    template = ConsentTemplateFactory(code="intake-2027", version=1)
    template.effective_to = template.effective_from.replace(year=template.effective_from.year + 1)
    template.save()
    ConsentTemplate.objects.filter(pk=template.pk).delete()

    assert [(row[0], row[2]) for row in changes()] == [
        (world.kent.pk, "template created"), (world.medway.pk, "template created"),
        (world.kent.pk, "template changed: effective_to"), (world.medway.pk, "template changed: effective_to"),
        (world.kent.pk, "template deleted"), (world.medway.pk, "template deleted"),
    ]  # fmt: skip


def test_a_change_made_in_the_admin_names_the_administrator_and_the_request(world, client, changes):
    client.force_login(world.admin)
    url = f"/admin/colocation/user/{world.unassigned_therapist.pk}/change/"

    data = admin_form(client, url)
    data.pop("is_active", None)  # unticked: the account is switched off
    response = client.post(url, data)
    assert response.status_code == 302

    assert changes(action="authorisation_change") == [
        (world.kent.pk, f"user:{world.unassigned_therapist.pk}", "is_active true->false", "admin")
    ]
    event = AccessEvent.objects.filter(action="authorisation_change").latest("pk")
    assert (event.actor_name, event.purpose, event.method, event.chain_id) == (
        "admin",
        "is_active true->false",
        "POST",
        world.kent.pk,
    )
    assert event.path == url and len(event.request_id) == 32
    assert verify_chain(organisation_ids=[world.kent.pk]).verified


def test_a_change_whose_event_cannot_be_written_does_not_happen(world):
    run_statements(ACCESS_LOG_DOWN[connection.vendor])
    try:
        with pytest.raises(AccessLogUnavailable), transaction.atomic():
            world.therapist.is_superuser = True
            world.therapist.save()
        with pytest.raises(AccessLogUnavailable), transaction.atomic():
            world.unassigned_therapist.groups.add(world.team.group)
    finally:
        run_statements(ACCESS_LOG_MENDED[connection.vendor])
    assert not User.objects.get(pk=world.therapist.pk).is_superuser
    assert not world.unassigned_therapist.groups.exists()
