from consent.access.log import AccessContext


def access_context(request, purpose: str = "") -> AccessContext:
    """Who is asking and in which request, for the access log (the server's request id; the client's beside it)."""
    return AccessContext.for_request(request, purpose=purpose)
