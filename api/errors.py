"""One exception handler: domain errors become the project's JSON error shape."""

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from consent.access.firewall import ClientDataRefused, ReferralNotFound, keep_refusal_logged
from consent.access.log import AccessLogUnavailable


def _validation_detail(error: DjangoValidationError):
    if hasattr(error, "error_dict"):
        return {field: _flatten(messages) for field, messages in error.message_dict.items()}
    return {"non_field_errors": error.messages}


def _flatten(messages):
    # message_dict gives lists; a nested dict (client fields) arrives as a one-item list of dicts.
    if len(messages) == 1 and isinstance(messages[0], dict):
        return messages[0]
    return messages


def _body_too_big() -> Response:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return Response(
        {"detail": f"The request body is larger than the {limit // 1024} KiB accepted; send only the documented fields.",
         "code": "request_too_large"},
        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )  # fmt: skip


def _actionable(exc: exceptions.APIException) -> exceptions.APIException:
    """DRF's parser errors, reworded to say what to send instead."""
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return exceptions.UnsupportedMediaType(
            "", detail=f"{exc.detail} Send a JSON object with the header Content-Type: application/json."
        )
    if isinstance(exc, exceptions.ParseError):
        reason = str(exc.detail).removeprefix("JSON parse error - ")
        return exceptions.ParseError(f"The request body is not valid JSON ({reason}). Send a JSON object.")
    return exc


def _log_unavailable(exc: AccessLogUnavailable) -> Response:
    # Fail closed: the access could not be logged, so it did not happen. The answer carries nothing of the
    # request's data, only that it failed and may be tried again.
    set_rollback()
    return Response(
        {"detail": str(exc), "code": "access_log_unavailable"},
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "30"},
    )


def exception_handler(exc, context):
    if isinstance(exc, AccessLogUnavailable):
        return _log_unavailable(exc)
    if isinstance(exc, RequestDataTooBig):
        # Django would answer an HTML 400 page; the body was never parsed, so nothing was written.
        set_rollback()
        return _body_too_big()
    # A firewall refusal has already written its denied access event: keep it, roll back nothing else,
    # since the firewall runs before any write.
    refusal = exc if isinstance(exc, (ReferralNotFound, ClientDataRefused)) else None
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=_validation_detail(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or "You do not have permission to do this.")
    else:
        exc = _actionable(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if refusal is None:
        set_rollback()
    else:
        # DRF's handler has marked the request for rollback, and a service's savepoint may have dropped
        # the denied events already: the firewall puts them back, for every view, not only those that ask.
        keep_refusal_logged(refusal)
    if isinstance(response.data, dict) and "detail" not in response.data and response.status_code == status.HTTP_400_BAD_REQUEST:
        response.data = {"detail": "Some fields need correcting.", "errors": response.data}
    return response


def validation_error_response(errors: dict) -> Response:
    return Response({"detail": "Some fields need correcting.", "errors": errors}, status=status.HTTP_400_BAD_REQUEST)
