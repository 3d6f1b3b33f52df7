"""django-axes' answer to a locked-out account, in the API's JSON shape (AXES_LOCKOUT_CALLABLE)."""

from axes.helpers import get_cool_off, get_lockout_message
from django.conf import settings
from django.http import HttpResponse, JsonResponse


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """429 naming the lockout and when to try again; JSON for the API, plain text for the admin form."""
    cool_off = get_cool_off(request)
    minutes = int(cool_off.total_seconds() // 60) if cool_off else None
    detail = f"This account is locked after {settings.AXES_FAILURE_LIMIT} failed sign-ins in a row. " + (
        f"Try again in {minutes} minutes, or ask an administrator to unlock it." if minutes else get_lockout_message()
    )
    if original_response is not None and getattr(original_response, "answers_lockout", False):
        # A page that explains the lockout itself (the web sign-in page) keeps its own answer.
        return original_response
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": detail, "code": "locked_out"}, status=429)
    return HttpResponse(detail, status=429, content_type="text/plain; charset=utf-8")
