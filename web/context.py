"""Who is asking, in which request: the same access context the API builds, from a page request."""

from consent.access.log import AccessContext


def access_context(request, purpose: str = "") -> AccessContext:
    # The server's request id, with the client's beside it (api.middleware.RequestIdMiddleware).
    return AccessContext.for_request(request, purpose=purpose)
