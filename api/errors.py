"""One exception handler: domain errors become the project's JSON error shape."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from consent.access.firewall import ClientDataRefused, ReferralNotFound


def _validation_detail(error: DjangoValidationError):
    if hasattr(error, "error_dict"):
        return {field: _flatten(messages) for field, messages in error.message_dict.items()}
    return {"non_field_errors": error.messages}


def _flatten(messages):
    # message_dict gives lists; a nested dict (client fields) arrives as a one-item list of dicts.
    if len(messages) == 1 and isinstance(messages[0], dict):
        return messages[0]
    return messages


def exception_handler(exc, context):
    # A firewall refusal has already written its denied access event: keep it, roll back nothing else,
    # since the firewall runs before any write.
    refusal = isinstance(exc, (ReferralNotFound, ClientDataRefused))
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=_validation_detail(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or "You do not have permission to do this.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if not refusal:
        set_rollback()
    if isinstance(response.data, dict) and "detail" not in response.data and response.status_code == status.HTTP_400_BAD_REQUEST:
        response.data = {"detail": "Some fields need correcting.", "errors": response.data}
    return response


def validation_error_response(errors: dict) -> Response:
    return Response({"detail": "Some fields need correcting.", "errors": errors}, status=status.HTTP_400_BAD_REQUEST)
