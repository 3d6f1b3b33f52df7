from consent.access.log import AccessContext


def access_context(request, purpose: str = "") -> AccessContext:
    """Who is asking and in which request, for the access log."""
    return AccessContext(
        user=request.user,
        request_id=getattr(request, "request_id", ""),
        method=request.method,
        path=request.get_full_path()[:500],
        purpose=purpose,
    )
