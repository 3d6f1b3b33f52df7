"""Hooks only: Django's signals call the rules in consent.access.account_events, whatever door a change came by.

Sign-in, failed sign-in and sign-out come from django.contrib.auth's signals, sent by the token endpoint, the
admin's and the browsable API's session login, and the sign-out endpoints alike. Changes to who may see what
come from the models' save, delete and many-to-many signals, so a change made in the admin, a service, a
command or a shell is logged the same way. Each save these hooks watch runs in a transaction (the models make
their saves atomic), so the event commits with the change or neither does.

Not seen by any signal: QuerySet.update() and raw SQL. For benefits-agency accounts the database itself
refuses what matters (colocation.triggers); see the README.
"""

from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver

from colocation.models import Organisation, StaffProfile, User
from colocation.selectors import organisation_of
from consent.access import account_events, caseload
from consent.access.account_events import AuthorisationChange, chains_of_organisation, record_authorisation_change
from consent.access.log import AccessContext
from consent.access.models import (
    Action,
    ReferralGroupObjectPermission,
    ReferralUserObjectPermission,
    permission_rows_bulk_created,
)
from consent.models import ConsentTemplate

USER_FLAGS = ("is_active", "is_staff", "is_superuser")
PROFILE_FIELDS = ("organisation_id", "role")


def _context(request) -> AccessContext:
    if request is None:
        return account_events.current_context()
    return AccessContext.for_request(request, user=None)


def _flag(value) -> str:
    return str(bool(value)).lower()


# ---- signing in and out -------------------------------------------------------------------------------------


@receiver(user_logged_in, dispatch_uid="access_sign_in")
def _signed_in(sender, request=None, user=None, **kwargs):
    if user is not None:
        account_events.record_sign_in(context=_context(request), user=user, succeeded=True)


@receiver(user_login_failed, dispatch_uid="access_sign_in_failed")
def _sign_in_failed(sender, credentials=None, request=None, **kwargs):
    username = (credentials or {}).get("username", "")
    account_events.record_failed_sign_in(context=_context(request), username=username)


@receiver(user_logged_out, dispatch_uid="access_sign_out")
def _signed_out(sender, request=None, user=None, **kwargs):
    if user is not None and getattr(user, "is_authenticated", False):
        account_events.record_sign_out(context=_context(request), user=user)


# ---- accounts: flags, organisation and role -----------------------------------------------------------------


def _watched(update_fields, names) -> bool:
    return update_fields is None or bool(set(update_fields) & set(names))


@receiver(pre_save, sender=User, dispatch_uid="access_user_before")
def _user_before(sender, instance, update_fields=None, **kwargs):
    instance._authorisation_before = None
    if instance.pk and not instance._state.adding and _watched(update_fields, USER_FLAGS):
        instance._authorisation_before = User.objects.filter(pk=instance.pk).values(*USER_FLAGS).first()


@receiver(post_save, sender=User, dispatch_uid="access_user_after")
def _user_after(sender, instance, created, update_fields=None, **kwargs):
    before = getattr(instance, "_authorisation_before", None)
    if created:
        changes = [f"account created; {name} true" for name in ("is_staff", "is_superuser") if getattr(instance, name)]
    elif before is not None:
        changes = [
            f"{name} {_flag(before[name])}->{_flag(getattr(instance, name))}"
            for name in USER_FLAGS
            if bool(before[name]) != bool(getattr(instance, name))
        ]
    else:
        return
    record_authorisation_change(
        AuthorisationChange(object_type="user", object_id=str(instance.pk), changes=changes,
                            chains=chains_of_organisation(organisation_of(instance)))
    )  # fmt: skip


@receiver(pre_save, sender=StaffProfile, dispatch_uid="access_profile_before")
def _profile_before(sender, instance, **kwargs):
    instance._authorisation_before = None
    if instance.pk and not instance._state.adding:
        instance._authorisation_before = StaffProfile.objects.filter(pk=instance.pk).values(*PROFILE_FIELDS).first()


def _organisations(*ids) -> list[Organisation]:
    return list(Organisation.objects.filter(pk__in=[i for i in ids if i]))


def _profile_change(profile: StaffProfile, before: dict | None, after: dict | None) -> None:
    before = before or dict.fromkeys(PROFILE_FIELDS)
    after = after or dict.fromkeys(PROFILE_FIELDS)
    changes = [
        f"{name.removesuffix('_id')} {before[name] or 'none'}->{after[name] or 'none'}"
        for name in PROFILE_FIELDS
        if before[name] != after[name]
    ]
    chains = [
        chain
        for org in _organisations(before["organisation_id"], after["organisation_id"])
        for chain in chains_of_organisation(org)
    ]
    record_authorisation_change(
        AuthorisationChange(object_type="user", object_id=str(profile.user_id), changes=changes, chains=chains)
    )


@receiver(post_save, sender=StaffProfile, dispatch_uid="access_profile_after")
def _profile_after(sender, instance, created, **kwargs):
    before = None if created else getattr(instance, "_authorisation_before", None)
    if not created and before is None:
        return
    _profile_change(instance, before, {name: getattr(instance, name) for name in PROFILE_FIELDS})


@receiver(post_delete, sender=StaffProfile, dispatch_uid="access_profile_deleted")
def _profile_deleted(sender, instance, **kwargs):
    _profile_change(instance, {name: getattr(instance, name) for name in PROFILE_FIELDS}, None)


# ---- accounts: groups and model permissions -----------------------------------------------------------------


def _memberships_changed(what: str, sender, instance, action, reverse, pk_set, **kwargs):
    if action == "pre_clear":
        if what == "groups":
            related = Group.objects.filter(user=instance) if not reverse else User.objects.filter(groups=instance)
        else:
            related = Permission.objects.filter(user=instance) if not reverse else User.objects.filter(user_permissions=instance)
        instance._authorisation_cleared = set(related.values_list("pk", flat=True))
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if action == "post_clear":
        pk_set = getattr(instance, "_authorisation_cleared", set())
    if not pk_set:
        return
    sign = "+" if action == "post_add" else "-"
    if not reverse:
        users = {instance.pk: sorted(pk_set)}
    else:
        users = {user_pk: [instance.pk] for user_pk in sorted(pk_set)}
    accounts = User.objects.select_related("staff_profile__organisation").in_bulk(list(users))
    for user_pk, related_ids in users.items():
        account = accounts.get(user_pk)
        changes = [f"{what} {sign}{', '.join(str(i) for i in related_ids)}"]
        chains = chains_of_organisation(organisation_of(account)) if account is not None else []
        record_authorisation_change(
            AuthorisationChange(object_type="user", object_id=str(user_pk), changes=changes, chains=chains)
        )


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="access_groups")
def _groups_changed(sender, **kwargs):
    _memberships_changed("groups", sender, **kwargs)


@receiver(m2m_changed, sender=User.user_permissions.through, dispatch_uid="access_user_permissions")
def _user_permissions_changed(sender, **kwargs):
    _memberships_changed("permissions", sender, **kwargs)


# ---- organisations: their kind ------------------------------------------------------------------------------


@receiver(pre_save, sender=Organisation, dispatch_uid="access_organisation_before")
def _organisation_before(sender, instance, **kwargs):
    instance._authorisation_before = None
    if instance.pk and not instance._state.adding:
        instance._authorisation_before = Organisation.objects.filter(pk=instance.pk).values_list("kind", flat=True).first()


@receiver(post_save, sender=Organisation, dispatch_uid="access_organisation_after")
def _organisation_after(sender, instance, created, **kwargs):
    before = getattr(instance, "_authorisation_before", None)
    if created or before is None or before == instance.kind:
        return
    record_authorisation_change(
        AuthorisationChange(object_type="organisation", object_id=str(instance.pk), changes=[f"kind {before}->{instance.kind}"],
                            chains=chains_of_organisation(Organisation(pk=instance.pk, kind=before)) + chains_of_organisation(instance))
    )  # fmt: skip


# ---- object permissions on referrals ------------------------------------------------------------------------


def permission_rows_changed(rows, *, granted: bool) -> None:
    """Object-permission rows on referrals written or deleted outside the firewall's own (logged) operations."""
    if account_events.in_firewall_operation():
        return
    for row in rows:
        referral = row.content_object
        holder = f"user {row.user_id}" if isinstance(row, ReferralUserObjectPermission) else f"group {row.group_id}"
        record_authorisation_change(
            AuthorisationChange(
                object_type="referral", object_id=str(referral.pk), action=Action.GRANT if granted else Action.REVOKE,
                changes=[f"{row.permission.codename} {'granted to' if granted else 'revoked from'} {holder}"],
                chains=[referral.provider], client_pseudonym=referral.client_id, referral_id=referral.pk,
            )
        )  # fmt: skip


@receiver(permission_rows_bulk_created, dispatch_uid="access_bulk_grants")
def _bulk_granted(sender, rows, **kwargs):
    permission_rows_changed(rows, granted=True)


@receiver(post_save, sender=ReferralUserObjectPermission, dispatch_uid="access_user_grant")
@receiver(post_save, sender=ReferralGroupObjectPermission, dispatch_uid="access_group_grant")
def _granted(sender, instance, created, **kwargs):
    permission_rows_changed([instance], granted=True)


@receiver(post_delete, sender=ReferralUserObjectPermission, dispatch_uid="access_user_revoke")
@receiver(post_delete, sender=ReferralGroupObjectPermission, dispatch_uid="access_group_revoke")
def _revoked(sender, instance, **kwargs):
    permission_rows_changed([instance], granted=False)


# ---- each user's caseload, kept equal to the grants (consent.access.caseload) -------------------------------


@receiver(permission_rows_bulk_created, dispatch_uid="caseload_bulk_grants")
def _caseload_bulk_granted(sender, rows, **kwargs):
    referral_ids = {row.content_object_id for row in rows}
    if sender is ReferralUserObjectPermission:
        caseload.user_granted({row.user_id for row in rows}, referral_ids)
    else:
        caseload.group_granted({row.group_id for row in rows}, referral_ids)


@receiver(pre_save, sender=ReferralUserObjectPermission, dispatch_uid="caseload_user_grant_before")
@receiver(pre_save, sender=ReferralGroupObjectPermission, dispatch_uid="caseload_group_grant_before")
def _caseload_grant_before(sender, instance, **kwargs):
    # A grant row edited in place (the admin, a shell) no longer stands behind its old entry.
    instance._caseload_before = None
    if instance.pk and not instance._state.adding:
        instance._caseload_before = sender.objects.filter(pk=instance.pk).values_list("content_object_id", flat=True).first()


@receiver(post_save, sender=ReferralUserObjectPermission, dispatch_uid="caseload_user_grant")
def _caseload_user_granted(sender, instance, created, **kwargs):
    if getattr(instance, "_caseload_before", None) is not None:
        caseload.group_revoked([instance._caseload_before, instance.content_object_id])
    caseload.user_granted([instance.user_id], [instance.content_object_id])


@receiver(post_save, sender=ReferralGroupObjectPermission, dispatch_uid="caseload_group_grant")
def _caseload_group_granted(sender, instance, created, **kwargs):
    if getattr(instance, "_caseload_before", None) is not None:
        caseload.group_revoked([instance._caseload_before, instance.content_object_id])
    caseload.group_granted([instance.group_id], [instance.content_object_id])


@receiver(post_delete, sender=ReferralUserObjectPermission, dispatch_uid="caseload_user_revoke")
def _caseload_user_revoked(sender, instance, **kwargs):
    caseload.user_revoked([instance.user_id], [instance.content_object_id])


@receiver(post_delete, sender=ReferralGroupObjectPermission, dispatch_uid="caseload_group_revoke")
def _caseload_group_revoked(sender, instance, **kwargs):
    caseload.group_revoked([instance.content_object_id])


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="caseload_groups")
def _caseload_memberships_changed(sender, instance, action, reverse, pk_set, **kwargs):
    if action == "pre_clear":
        # Emptying a group's members: who they were is known only before.
        instance._caseload_cleared = set(User.objects.filter(groups=instance).values_list("pk", flat=True)) if reverse else set()
    elif action in ("post_add", "post_remove", "post_clear"):
        if not reverse:
            caseload.memberships_changed([instance.pk])
        else:
            caseload.memberships_changed(pk_set if action != "post_clear" else getattr(instance, "_caseload_cleared", ()))


# ---- consent templates --------------------------------------------------------------------------------------


TEMPLATE_FIELDS = ("code", "version", "title", "body", "effective_from", "effective_to", "language")


@receiver(pre_save, sender=ConsentTemplate, dispatch_uid="access_template_before")
def _template_before(sender, instance, **kwargs):
    instance._authorisation_before = None
    if instance.pk and not instance._state.adding:
        instance._authorisation_before = ConsentTemplate.objects.filter(pk=instance.pk).values(*TEMPLATE_FIELDS).first()


def _template_change(template: ConsentTemplate, changes: list[str]) -> None:
    record_authorisation_change(
        AuthorisationChange(object_type="consent_template", object_id=str(template.pk), changes=changes,
                            chains=account_events.every_provider())
    )  # fmt: skip


@receiver(post_save, sender=ConsentTemplate, dispatch_uid="access_template_after")
def _template_after(sender, instance, created, **kwargs):
    if created:
        _template_change(instance, ["template created"])
        return
    before = getattr(instance, "_authorisation_before", None)
    if before is None:
        return
    changed = [name for name in TEMPLATE_FIELDS if before[name] != getattr(instance, name)]
    if changed:
        _template_change(instance, [f"template changed: {', '.join(changed)}"])


@receiver(post_delete, sender=ConsentTemplate, dispatch_uid="access_template_deleted")
def _template_deleted(sender, instance, **kwargs):
    _template_change(instance, ["template deleted"])
