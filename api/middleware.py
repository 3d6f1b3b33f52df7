import re
import uuid

from django.conf import settings
from django.http import JsonResponse

from api.errors import DATABASE_UNAVAILABLE, unavailable_response
from consent.access import account_events, refusals
from consent.access.log import AccessLogUnavailable

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Give every request the server's own id, which the access log and the report count attempts by.

    A client-sent X-Request-ID is never used as the id: a client that repeated one would make nine attempts
    count as one. A well-formed one is kept beside it (`client_request_id`), as untrusted, for correlating with
    the client's own logs. The request is also made known to consent.access for the length of the request, so
    a change to who may see what made anywhere in it (the admin, a service) is logged with its actor.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = uuid.uuid4().hex
        request.client_request_id = incoming if _REQUEST_ID.match(incoming) else ""
        with account_events.serving(request):
            response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


# Django's own error pages are HTML; under the API an error is JSON in the project's shape, whoever raised it.
_API_ERROR_DETAIL = {
    400: "The request could not be read; see the API documentation at /api/docs/.",
    403: "This request is not allowed.",
    404: "Nothing at this address: check the path and the id in it against the API documentation at /api/docs/.",
    500: "Something went wrong on our side; nothing was saved. Try again, and report it if it persists.",
}


def api_error_as_json(request, response):
    """An HTML error page (an unrouted path, a Django-level refusal) under /api/v1/ becomes a JSON error."""
    if (
        request.path.startswith("/api/v1/")
        and response.status_code in _API_ERROR_DETAIL
        and not response.get("Content-Type", "").startswith(("application/json", "application/problem+json"))
    ):
        json_response = JsonResponse({"detail": _API_ERROR_DETAIL[response.status_code]}, status=response.status_code)
        for header in ("X-Request-ID", "Retry-After"):
            if header in response:
                json_response[header] = response[header]
        return json_response
    return response


class SecurityHeadersMiddleware:
    """Headers Django's SecurityMiddleware does not set (a content security policy, permissions policy, no caching
    of client data), on every response; and errors under the API answered as JSON, never Django's HTML pages.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = api_error_as_json(request, self.get_response(request))
        response.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        # Also set here, not only by XFrameOptionsMiddleware: an error answered above that middleware must carry it too.
        response.setdefault("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY"))
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        response.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.path.startswith("/api/v1/"):
            # Client data must not linger in shared caches or the browser's.
            response.setdefault("Cache-Control", "no-store")
        return response


class DatabaseUnavailableMiddleware:
    """A database that cannot be reached answers 503 with Retry-After, wherever in the view it fails.

    Django calls the view inside the request's transaction (ATOMIC_REQUESTS wraps the view callable in
    transaction.atomic), so a failure to open that transaction, to commit it, or anywhere between (DRF's
    exception handler included, and views outside DRF such as the admin) comes out of the view callable after
    the transaction has rolled back, and Django hands it to process_exception. Failures outside the view (a
    middleware reading the session before it or saving it after) never reach process_exception: Django turns
    them into its 500 page, which is api.errors.server_error (config/urls.py handler500), answering alike.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        return unavailable_response(request, exception)


class RefusalLogMiddleware:
    """Write the refusals of a request once its transaction has rolled back, in a transaction of their own
    (consent.access.refusals; docs/architecture.md, "Transactions").

    If they cannot be written the answer is the 503 of an unavailable log or database, never the refusal
    without its log.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        try:
            refusals.log_pending(request)
        except (AccessLogUnavailable, *DATABASE_UNAVAILABLE) as failure:
            return unavailable_response(request, failure)
        return response
