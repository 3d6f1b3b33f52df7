"""Who is asking, in which request: the same access context the API builds, from a page request."""

from consent.access.log import AccessContext


def access_context(request, purpose: str = "") -> AccessContext:
    return AccessContext(
        user=request.user,
        request_id=getattr(request, "request_id", ""),
        method=request.method,
        path=request.get_full_path()[:500],
        purpose=purpose,
    )
