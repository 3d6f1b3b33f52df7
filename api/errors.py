"""One exception handler: domain errors become the project's JSON error shape.

And the one answer to "the database cannot be reached": a 503 with Retry-After, in that shape under the API and
as a plain page elsewhere, from whichever layer the failure reaches first (this handler inside DRF's views,
api.middleware.DatabaseUnavailableMiddleware around any view, `server_error` for failures outside the view).
"""

import logging
import sys

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from consent.access.firewall import ClientDataRefused, ReferralNotFound
from consent.access.log import AccessLogUnavailable
from consent.access.refusals import roll_back_and_log_after


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


logger = logging.getLogger(__name__)

# A refused or lost connection, a server restarting, a failover, a lock or statement timeout: Django raises
# these as OperationalError (InterfaceError once the connection is already closed). The request did nothing
# that stays, and the same request a little later will very likely succeed.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
# A restart or failover takes seconds; the service answers again as soon as the database does (a broken
# connection is dropped at the end of the request that found it broken).
DATABASE_RETRY_AFTER_SECONDS = 5
ACCESS_LOG_RETRY_AFTER_SECONDS = 30


def temporarily_unavailable(exc: BaseException | None, *, rolled_back: bool = True) -> tuple[dict, int] | None:
    """The JSON error and the Retry-After seconds for a failure that the caller may simply try again, or None.

    `rolled_back` says whether the request's transaction is known to have been rolled back (the failure
    reached the view or its transaction); only then does the answer promise that nothing was saved.
    """
    if isinstance(exc, AccessLogUnavailable):
        # Fail closed: the access could not be logged, so it did not happen. The answer carries nothing of the
        # request's data, only that it failed and may be tried again.
        return {"detail": str(exc), "code": "access_log_unavailable"}, ACCESS_LOG_RETRY_AFTER_SECONDS
    if isinstance(exc, DATABASE_UNAVAILABLE):
        detail = "The database cannot be reached for the moment" + ("; nothing was saved." if rolled_back else ".")
        return {"detail": f"{detail} Try again in a few seconds.", "code": "database_unavailable"}, DATABASE_RETRY_AFTER_SECONDS
    return None


def is_api_path(path: str) -> bool:
    return path.startswith("/api/")


def unavailable_response(request, exc: BaseException | None, *, rolled_back: bool = True) -> HttpResponse | None:
    """A 503 for a failure to retry, outside DRF (middleware, handler500): JSON under the API, a page elsewhere."""
    unavailable = temporarily_unavailable(exc, rolled_back=rolled_back)
    if unavailable is None:
        return None
    body, retry_after = unavailable
    logger.warning("503 for %s %s: %s: %s", request.method, request.path, type(exc).__name__, exc)
    if is_api_path(request.path):
        response = JsonResponse(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    else:
        # Rendered without the request: a context processor could ask for request.user, i.e. the database.
        page = render_to_string("503.html", {"detail": body["detail"], "retry_after": retry_after})
        response = HttpResponse(page, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    response["Retry-After"] = str(retry_after)
    return response


def server_error(request):
    """handler500: a database failure outside any view (a middleware reading the session before the view, or
    saving it after) is a 503 like one inside it; anything else is Django's 500 as before.

    Django calls this while handling the exception, so sys.exc_info() holds it. The view's transaction, if
    there was one, may have committed before the failure, so this answer promises nothing about what was saved.
    """
    return unavailable_response(request, sys.exc_info()[1], rolled_back=False) or defaults.server_error(request)


def exception_handler(exc, context):
    unavailable = temporarily_unavailable(exc)
    if unavailable is not None:
        logger.warning("503 for %s %s: %s: %s", context["request"].method, context["request"].path, type(exc).__name__, exc)
        set_rollback()
        body, retry_after = unavailable
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": str(retry_after)})
    if isinstance(exc, RequestDataTooBig):
        # Django would answer an HTML 400 page; the body was never parsed, so nothing was written.
        set_rollback()
        return _body_too_big()
    # A firewall refusal: the request rolls back whole, and its denied events are written again after it.
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
        roll_back_and_log_after(context["request"], refusal)
    if isinstance(response.data, dict) and "detail" not in response.data and response.status_code == status.HTTP_400_BAD_REQUEST:
        response.data = {"detail": "Some fields need correcting.", "errors": response.data}
    return response


def validation_error_response(errors: dict) -> Response:
    return Response({"detail": "Some fields need correcting.", "errors": errors}, status=status.HTTP_400_BAD_REQUEST)
