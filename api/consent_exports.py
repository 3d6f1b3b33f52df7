"""Exports of a referral's latest consent: a FHIR R4 Consent and a signed Kantara consent receipt.

Thin views: the firewall opens the referral (logged as an export, or a logged 404), a selector finds the
consent, and consent.fhir / consent.receipts build the document.
"""

from django.db.models import QuerySet
from django.http import HttpResponse
from django.urls import include, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from api.base import ClientDataViewSet
from consent import selectors
from consent.access import firewall
from consent.access.models import Action
from consent.fhir import fhir_consent
from consent.models import Referral
from consent.receipts import consent_receipt, receipt_html


class PrintableReceiptRenderer(BaseRenderer):
    """`?format=html`: the receipt as a printable page for the client (the view renders it itself)."""

    media_type = "text/html"
    format = "html"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Only errors reach here (a 404 has no page of its own): say them as plain text.
        return str((data or {}).get("detail", "")).encode("utf-8") if isinstance(data, dict) else b""


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
        return Referral.objects.select_related("provider", "site")

    def _latest_consent(self):
        consent = selectors.latest_consent(self.get_object())
        if consent is None:
            raise NotFound(
                "No consent has been recorded for this referral yet, so there is nothing to export; "
                "record it with POST /api/v1/referrals/{id}/consents/."
            )
        return consent

    @extend_schema(
        summary="The latest consent as an HL7 FHIR R4 Consent resource",
        responses={
            (200, "application/fhir+json"): OpenApiResponse(OpenApiTypes.OBJECT, description="A FHIR R4 Consent"),
            404: None,
        },
    )
    @action(detail=True, methods=["get"], url_path="fhir-consent")
    def fhir_consent(self, request, pk=None):
        return Response(fhir_consent(self._latest_consent()), content_type="application/fhir+json")

    @extend_schema(
        summary="The latest consent as a signed Kantara Consent Receipt v1.1",
        description=(
            "`receipt` holds the Kantara v1.1 fields; `signature` an Ed25519 signature over the canonical JSON of "
            "`receipt` (keys sorted, no whitespace, UTF-8). Verify with `python manage.py verify_consent_receipt FILE`."
        ),
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="{receipt, signature}"),
            (200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="?format=html: a printable page for the client"),
            404: None,
        },
    )
    @action(detail=True, methods=["get"], url_path="consent-receipt",
            renderer_classes=[JSONRenderer, BrowsableAPIRenderer, PrintableReceiptRenderer])  # fmt: skip
    def consent_receipt(self, request, pk=None):
        consent = self._latest_consent()
        if request.accepted_renderer.format == "html":
            return HttpResponse(receipt_html(consent), content_type="text/html; charset=utf-8")
        return Response(consent_receipt(consent))


router = SimpleRouter()
router.register("referrals", ConsentExportViewSet, basename="referral-consent-export")

urlpatterns: list = [path("", include(router.urls))]
