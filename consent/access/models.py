"""Object permissions on referrals (guardian, direct foreign keys) and the hash-chained access log."""

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.dispatch import Signal
from guardian.managers import GroupObjectPermissionManager, UserObjectPermissionManager
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from colocation.models import Organisation
from colocation.selectors import is_benefits_agency_account

# Sent with the rows a bulk_create wrote, which Django's post_save never sees: consent.access.signals logs
# them as it logs a single grant. A signal, so that these models need not import the log's writers above them.
permission_rows_bulk_created = Signal()


class GrantRefused(ValidationError):
    pass


def refuse_client_data_grant_to(user, *, field: str = "user") -> None:
    """Raise if the account may never hold a permission on client data (`field` names it in the error).

    Checked by every grant row's save and bulk_create below, whatever path writes it, and by the firewall.
    """
    if is_benefits_agency_account(user):
        raise GrantRefused(
            {field: f"{user.get_username()} belongs to a benefits agency and can never hold a permission on client data."}
        )


def _logged_bulk_create(manager, objs, args, kwargs):
    """bulk_create sends no post_save: log the rows as the signals would (consent.access.signals), atomically."""
    with transaction.atomic(using=manager.db):
        created = super(type(manager), manager).bulk_create(objs, *args, **kwargs)
        permission_rows_bulk_created.send(sender=manager.model, rows=created)
    return created


class ReferralUserPermissionManager(UserObjectPermissionManager):
    def bulk_create(self, objs, *args, **kwargs):
        # guardian's assign_perm with a queryset of referrals or of users writes through bulk_create, which
        # never calls save(): the same refusal has to be made here.
        objs = list(objs)
        for user in {obj.user for obj in objs}:
            refuse_client_data_grant_to(user)
        return _logged_bulk_create(self, objs, args, kwargs)


class ReferralGroupPermissionManager(GroupObjectPermissionManager):
    def bulk_create(self, objs, *args, **kwargs):
        return _logged_bulk_create(self, list(objs), args, kwargs)


class ReferralUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey("consent.Referral", on_delete=models.CASCADE)

    objects = ReferralUserPermissionManager()

    class Meta(UserObjectPermissionBase.Meta):
        indexes = [models.Index(fields=["user", "permission", "content_object"], name="referral_uperm_lookup")]

    def save(self, *args, **kwargs):
        # Whatever path writes a grant (guardian's assign_perm, the admin, a shell), the firewall refuses
        # one to a benefits-agency account.
        refuse_client_data_grant_to(self.user)
        # Atomic with the access event the grant writes (consent.access.signals).
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)


class ReferralGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey("consent.Referral", on_delete=models.CASCADE)

    objects = ReferralGroupPermissionManager()

    def save(self, *args, **kwargs):
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)

    class Meta(GroupObjectPermissionBase.Meta):
        indexes = [models.Index(fields=["group", "permission", "content_object"], name="referral_gperm_lookup")]


class CaseloadEntry(models.Model):
    """One referral a user holds a permission on, directly or through a group: guardian's rows, copied in list order.

    Guardian's rows stay the source of truth; these are kept equal to them in the transaction of every grant,
    revoke and group membership change (consent.access.caseload, hooked in consent.access.signals), and
    `python manage.py recount_caseload` recounts them. They exist so the firewall reads a user's page of
    referrals newest first from one index range, as a plain "my referrals" query would, instead of fetching and
    sorting every referral the user was ever granted (about 2,000 for a therapist at a million referrals).
    The referral's provider and list order are copies: the firewall joins on them, so a copy that ever differed
    would hide the referral, never show another.
    """

    # The unique key and the list index lead with the user: no index of its own.
    user = models.ForeignKey("colocation.User", on_delete=models.CASCADE, related_name="+", db_index=False)
    codename = models.CharField(max_length=100)
    referral = models.ForeignKey("consent.Referral", on_delete=models.CASCADE, related_name="caseload_entries")
    provider = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+", db_index=False)
    referred_on = models.DateField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "codename", "referral"], name="caseload_entry_unique"),
        ]
        indexes = [
            # The referral list's order (consent.selectors.referrals_for_list) after the firewall's equalities.
            models.Index(
                fields=["user", "codename", "provider", "-referred_on", "-created_at", "referral"],
                name="caseload_list_order",
            ),
        ]


class Action(models.TextChoices):
    READ = "read", "Read"
    LIST = "list", "List"
    CREATE = "create", "Create"
    RECORD = "record", "Record (consent, withdrawal, check, decline, discharge)"
    EXPORT = "export", "Export"
    WITHDRAWAL = "withdrawal", "Withdrawal"
    GRANT = "grant", "Permission grant"
    REVOKE = "revoke", "Permission revoke"
    BREAK_GLASS = "break_glass", "Break-glass"
    SIGN_IN = "sign_in", "Sign-in"
    SIGN_IN_FAILED = "sign_in_failed", "Failed sign-in"
    SIGN_OUT = "sign_out", "Sign-out"
    AUTHORISATION_CHANGE = "authorisation_change", "Authorisation change (account, organisation, template)"
    RETENTION = "retention", "Retention erasure"
    REPORT = "report", "Compliance report (read, export or snapshot)"


class Outcome(models.TextChoices):
    ALLOWED = "allowed", "Allowed"
    DENIED = "denied", "Denied"


class AccessEvent(models.Model):
    """One access to client data. Append-only (database triggers) and hash-chained per provider."""

    # No index of its own: the unique (chain, seq) and four other indexes lead with the chain (migration 0013).
    chain = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+", db_index=False)
    seq = models.BigIntegerField()
    occurred_at = models.DateTimeField()
    # Plain values, not foreign keys: the log must outlive renamed or deleted accounts.
    actor_id = models.BigIntegerField(null=True)
    actor_name = models.CharField(max_length=150)
    actor_organisation_id = models.BigIntegerField(null=True)
    actor_organisation_kind = models.CharField(max_length=32, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    # Clients are named only by pseudonym, so erasing identifiers leaves the log whole.
    client_pseudonym = models.UUIDField(null=True)
    referral_id = models.UUIDField(null=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    purpose = models.CharField(max_length=500, blank=True)
    # The server's own id for the request: what attempts are counted by.
    request_id = models.CharField(max_length=64, blank=True)
    # The X-Request-ID the client sent, if any: untrusted, kept for correlation only.
    client_request_id = models.CharField(max_length=64, blank=True, default="")
    method = models.CharField(max_length=10, blank=True)
    path = models.CharField(max_length=500, blank=True)
    status = models.PositiveSmallIntegerField(null=True)
    alert_reasons = models.CharField(max_length=200, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    # On the newest event of each write only: the log key's signature of the chain head that write made
    # (consent.access.heads). Not hashed: it signs the hash. Lets a failed head be traced to the first event
    # no valid signature covers.
    head_signature = models.CharField(max_length=88, blank=True, default="")
    head_key_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["chain", "seq"]
        constraints = [models.UniqueConstraint(fields=["chain", "seq"], name="access_event_chain_seq")]
        indexes = [
            models.Index(fields=["chain", "-occurred_at"], name="access_event_chain_time"),
            models.Index(fields=["actor_id", "occurred_at"], name="access_event_actor"),
            # The alert queue reads only the few events that raised an alert, newest first.
            models.Index(fields=["chain", "-seq"], condition=~models.Q(alert_reasons=""), name="access_event_alerts"),
            # A client's access history (and subject-access export) on their provider's chain, and a referral's
            # (its client's events narrowed to it): no index by referral, which every event would pay for.
            models.Index(fields=["chain", "client_pseudonym", "-seq"], name="access_event_client"),
            # The report counts benefits-agency attempts in a period: a handful among tens of millions of events
            # (measured at 1M referrals on PostgreSQL: 13.3 s without it, 1.2 s with it).
            models.Index(
                fields=["chain", "occurred_at"],
                condition=models.Q(actor_organisation_kind="benefits_agency"),
                name="access_event_agency",
            ),
        ]


class ChainHead(models.Model):
    """The newest event of one organisation's chain, signed; its row lock serialises that chain's writers."""

    organisation = models.OneToOneField(Organisation, on_delete=models.PROTECT, primary_key=True, related_name="+")
    seq = models.BigIntegerField(default=0)
    head_hash = models.CharField(max_length=64)
    # The log key's Ed25519 signature over (chain, seq, head_hash, signed_at), and which key made it
    # (consent.access.heads): whoever can write this row cannot sign it.
    signed_at = models.DateTimeField(null=True)
    signature = models.CharField(max_length=88, blank=True, default="")
    key_id = models.CharField(max_length=64, blank=True, default="")


class VerifiedCheckpoint(models.Model):
    """A point up to which a chain was walked in full and verified: later checks may resume from it.

    Added by every full verification (the command, a DPO's verify); never changed. Resuming re-checks the
    checkpoint event's own hash first, and the published heads (`--against`) still catch a chain rewritten
    before it.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    seq = models.BigIntegerField()
    event_hash = models.CharField(max_length=64)
    verified_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["organisation", "-seq"], name="access_checkpoint_latest")]


class Disposition(models.TextChoices):
    NO_CONCERN = "no_concern", "No concern"
    INVESTIGATING = "investigating", "Investigating"
    BREACH_CONFIRMED = "breach_confirmed", "Breach confirmed"


class AlertDisposition(models.Model):
    """A DPO's decision on an alert. Append-only: a new decision is a new row."""

    event = models.ForeignKey(AccessEvent, on_delete=models.PROTECT, related_name="dispositions")
    disposition = models.CharField(max_length=32, choices=Disposition.choices)
    note = models.TextField(max_length=4000)
    decided_by = models.ForeignKey("colocation.User", on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["decided_at", "pk"]
