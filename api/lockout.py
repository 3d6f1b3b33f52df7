"""django-axes' answer to a locked-out account, in the API's JSON shape (AXES_LOCKOUT_CALLABLE)."""

from axes.helpers import get_cool_off, get_lockout_message
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from rest_framework.settings import api_settings


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """429 naming the lockout and when to try again; JSON for the API, plain text for the admin form."""
    cool_off = get_cool_off(request)
    minutes = int(cool_off.total_seconds() // 60) if cool_off else None
    detail = f"This account is locked from this address after {settings.AXES_FAILURE_LIMIT} failed sign-ins in a row. " + (
        f"Try again in {minutes} minutes, or ask an administrator to unlock it." if minutes else get_lockout_message()
    )
    if original_response is not None and getattr(original_response, "answers_lockout", False):
        # A page that explains the lockout itself (the web sign-in page) keeps its own answer.
        return original_response
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": detail, "code": "locked_out"}, status=429)
    return HttpResponse(detail, status=429, content_type="text/plain; charset=utf-8")


def client_address(request) -> str | None:
    """The address django-axes keys a lockout on: the one the proxies in front saw, as DRF's throttles read it.

    With NUM_PROXIES set, the address that many hops from the end of X-Forwarded-For (written by our own
    proxies, not the client); with none, the connecting address. Behind a proxy, REMOTE_ADDR alone would be the
    proxy's, and every sign-in would share one address again.
    """
    remote = request.META.get("REMOTE_ADDR")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    proxies = api_settings.NUM_PROXIES
    if not proxies or not forwarded:
        return remote
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    return hops[-min(proxies, len(hops))] if hops else remote
