"""Exports of a referral's latest consent: a FHIR R4 Consent and a signed Kantara consent receipt.

Thin views: the firewall opens the referral (logged as an export, or a logged 404), a selector finds the
consent, and consent.fhir / consent.receipts build the document.
"""

from django.db.models import QuerySet
from django.http import HttpResponse
from django.urls import include, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from api.base import ClientDataViewSet
from api.referrals import AcknowledgementsOutput
from api.schema import DPO, LEAD, THERAPIST, code_field
from consent import selectors
from consent.access import firewall
from consent.access.models import Action
from consent.fhir import fhir_consent
from consent.models import ConsentScope
from consent.receipts import ConsentRecordAltered, consent_receipt, receipt_html


class PrintableReceiptRenderer(BaseRenderer):
    """`?format=html`: the receipt as a printable page for the client (the view renders it itself)."""

    media_type = "text/html"
    format = "html"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Only errors reach here (a 404 has no page of its own): say them as plain text.
        return str((data or {}).get("detail", "")).encode("utf-8") if isinstance(data, dict) else b""


# ---- the documents, as the schema names them (FHIR's and Kantara's own camelCase field names) -----------------


class FHIRConsentOutput(serializers.Serializer):
    """An HL7 FHIR R4 Consent resource (http://hl7.org/fhir/R4/consent.html); nested elements follow FHIR's own schema.

    The client appears by pseudonym only; the provision permits the scopes consented to and, nested, denies every
    action to the benefits agencies concerned.
    """

    resourceType = code_field("Consent")
    id = serializers.CharField()
    meta = serializers.JSONField()
    language = serializers.CharField()
    identifier = serializers.ListField(child=serializers.JSONField())
    status = code_field("active", "inactive", help_text="active while in force; inactive once withdrawn or discharged.")
    scope = serializers.JSONField()
    category = serializers.ListField(child=serializers.JSONField())
    patient = serializers.JSONField()
    dateTime = serializers.DateTimeField()
    performer = serializers.ListField(child=serializers.JSONField())
    organization = serializers.ListField(child=serializers.JSONField())
    policy = serializers.ListField(child=serializers.JSONField())
    provision = serializers.JSONField()


class ReceiptControllerOutput(serializers.Serializer):
    piiController = serializers.CharField()
    onBehalf = serializers.BooleanField()
    contact = serializers.CharField()
    odsCode = serializers.CharField(required=False)


class ReceiptPurposeOutput(serializers.Serializer):
    """One scope consented to, as a Kantara purpose; third parties named where data goes outside the provider."""

    purpose = serializers.CharField()
    purposeCategory = serializers.ListField(child=serializers.CharField())
    consentType = serializers.CharField()
    piiCategory = serializers.ListField(child=serializers.CharField())
    primaryPurpose = serializers.BooleanField()
    termination = serializers.CharField()
    thirdPartyDisclosure = serializers.BooleanField()
    thirdPartyName = serializers.CharField(required=False)
    scope = serializers.ChoiceField(choices=ConsentScope.choices)


class ReceiptServiceOutput(serializers.Serializer):
    service = serializers.CharField()
    purposes = ReceiptPurposeOutput(many=True)


class NothingDisclosedOutput(serializers.Serializer):
    """A party the client was told nothing is disclosed to: the benefits agency."""

    party = serializers.CharField()
    partyKind = serializers.CharField()
    statement = serializers.CharField()


class ScopeWithdrawnOutput(serializers.Serializer):
    scope = serializers.ChoiceField(choices=ConsentScope.choices)
    withdrawnAt = serializers.IntegerField(help_text="Seconds since the epoch.")


class ReceiptStatusOutput(serializers.Serializer):
    """In force, or ended by withdrawal or discharge; and the uses withdrawn one by one since."""

    state = code_field("in_force", "withdrawn", "ended_by_discharge")
    scopesInForce = serializers.ListField(child=serializers.ChoiceField(choices=ConsentScope.choices))
    scopesWithdrawn = ScopeWithdrawnOutput(many=True)
    endedOn = serializers.DateField(required=False, help_text="The day the consent ended, when it has.")


class KantaraReceiptOutput(serializers.Serializer):
    """The Kantara Consent Receipt v1.1 fields of the latest consent, plus the statement of what is not disclosed."""

    version = serializers.CharField()
    jurisdiction = serializers.CharField()
    consentTimestamp = serializers.IntegerField(help_text="Seconds since the epoch.")
    collectionMethod = serializers.CharField()
    consentReceiptID = serializers.CharField()
    publicKey = serializers.CharField(help_text="PEM of the service's Ed25519 public key.")
    language = serializers.CharField()
    piiPrincipalId = serializers.CharField(help_text="The client's pseudonym.")
    piiControllers = ReceiptControllerOutput(many=True)
    policyUrl = serializers.CharField()
    services = ReceiptServiceOutput(many=True)
    sensitive = serializers.BooleanField()
    spiCat = serializers.ListField(child=serializers.CharField())
    nothingDisclosedTo = NothingDisclosedOutput(many=True)
    acknowledgements = AcknowledgementsOutput()
    consentRecordedAt = serializers.IntegerField(help_text="Seconds since the epoch.")
    consentStatus = ReceiptStatusOutput(help_text="Where the consent stands as the receipt is issued (not a Kantara field).")
    howToWithdraw = serializers.CharField(help_text="How the client withdraws, in plain English (not a Kantara field).")


class ReceiptSignatureOutput(serializers.Serializer):
    """An Ed25519 signature over the canonical JSON of `receipt`."""

    alg = code_field("Ed25519")
    value = serializers.CharField(help_text="The signature, base64.")
    public_key = serializers.CharField(help_text="PEM of the public key; trust the one the service publishes, not only this.")
    key_id = serializers.CharField(help_text="SHA-256 (hex) of the public key's PEM.")
    canonicalisation = serializers.CharField()


class ConsentReceiptOutput(serializers.Serializer):
    """A signed consent receipt for the client."""

    receipt = KantaraReceiptOutput()
    signature = ReceiptSignatureOutput()


class ConsentExportViewSet(ClientDataViewSet):
    """GET /referrals/{id}/fhir-consent/ and /referrals/{id}/consent-receipt/."""

    purposes = {
        # The assigned team, or the provider's DPO (the firewall's rule for FHIR exports).
        "fhir_consent": firewall.Purpose.FHIR_EXPORT,
        # The assigned team: the receipt is handed to the client by their therapist.
        "consent_receipt": firewall.Purpose.VIEW,
    }
    actions_logged_as = {"fhir_consent": Action.EXPORT, "consent_receipt": Action.EXPORT}

    def safely_get_queryset(self) -> QuerySet:
        return selectors.referral_with_provider_and_site()

    def _latest_consent(self):
        consent = selectors.latest_consent(self.get_object())
        if consent is None:
            raise NotFound(
                "No consent has been recorded for this referral yet, so there is nothing to export; "
                "record it with POST /api/v1/referrals/{id}/consents/."
            )
        return consent

    @extend_schema(
        tags=[THERAPIST, LEAD, DPO],
        summary="The latest consent as a FHIR R4 Consent",
        description=(
            "The referral's latest consent in force as an HL7 FHIR R4 Consent resource (the release the NHS UK Core "
            "profiles use), for the assigned team and the provider's DPO. 404 until consent has been recorded. The "
            "export is an access event."
        ),
        responses={(200, "application/fhir+json"): OpenApiResponse(FHIRConsentOutput, description="A FHIR R4 Consent")},
    )
    @action(detail=True, methods=["get"], url_path="fhir-consent")
    def fhir_consent(self, request, pk=None):
        return Response(fhir_consent(self._latest_consent()), content_type="application/fhir+json")

    @extend_schema(
        tags=[THERAPIST, LEAD],
        summary="A signed consent receipt for the client",
        description=(
            "The latest consent in the fields of the Kantara Consent Receipt v1.1, naming the benefits agency as a "
            "party nothing is disclosed to, for the therapist to hand to the client. `signature` is an Ed25519 "
            "signature over the canonical JSON of `receipt` (keys sorted, no whitespace, UTF-8); check it with "
            "`python manage.py verify_consent_receipt FILE`. 404 until consent has been recorded."
        ),
        parameters=[
            OpenApiParameter(
                "format", str, enum=["json", "html"], description="json (default) or html: a printable page for the client."
            )
        ],
        responses={
            (200, "application/json"): ConsentReceiptOutput,
            (200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="?format=html: a printable page for the client"),
            409: OpenApiResponse(
                description="The consent record no longer matches what was recorded at intake: no receipt is issued."
            ),
        },
    )
    @action(detail=True, methods=["get"], url_path="consent-receipt",
            renderer_classes=[JSONRenderer, BrowsableAPIRenderer, PrintableReceiptRenderer])  # fmt: skip
    def consent_receipt(self, request, pk=None):
        consent = self._latest_consent()
        try:
            if request.accepted_renderer.format == "html":
                return HttpResponse(receipt_html(consent), content_type="text/html; charset=utf-8")
            return Response(consent_receipt(consent))
        except ConsentRecordAltered as altered:
            raise ConsentRecordConflict(str(altered)) from altered


class ConsentRecordConflict(APIException):
    """409: the consent record was changed behind the service's back; no receipt is issued for it."""

    status_code = 409
    default_code = "consent_record_altered"


router = SimpleRouter()
router.register("referrals", ConsentExportViewSet, basename="referral-consent-export")

urlpatterns: list = [path("", include(router.urls))]
