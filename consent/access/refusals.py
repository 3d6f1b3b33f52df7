"""A refusal is logged after the refused work rolls back, in a transaction of its own.

The transaction model (docs/architecture.md, "Transactions"): a request is one transaction (ATOMIC_REQUESTS),
and each service is an atomic block inside it (a savepoint there; its own transaction from a command). A
request that ends in an error rolls back whole. A refusal by the firewall is such an error, but its denied
events must stay, or the DPO would never see the attempt: so the layer that answers the refusal (the API's
exception handler, the web pages' decorator) rolls the request back and leaves the refusal on the request, and
api.middleware.RefusalLogMiddleware (for every path, the pages' too) writes its events after the request's
transaction has ended, in one of their own (the firewall only drafts them while a request is being served).
Nothing the refused request wrote survives, whatever it wrote before the refusal.
"""

from django.db import transaction

from consent.access.firewall import Refusal, log_refusal

_PENDING = "refusals_to_log"  # where a request keeps its refusals until log_pending


def _django_request(request):
    # DRF's Request wraps Django's; what the middleware sees is Django's.
    return getattr(request, "_request", request)


def roll_back_and_log_after(request, exc: Exception) -> None:
    """Roll back what the refused request did; its refusal (if `exc` carries one) is logged after the rollback."""
    refusal: Refusal | None = getattr(exc, "refusal", None)
    if not transaction.get_connection().in_atomic_block:
        # Autocommit (a view outside the request's transaction): nothing to roll back; the refusal is written now.
        if refusal is not None and refusal.drafts and not refusal.written:
            log_refusal(refusal)
        return
    transaction.set_rollback(True)
    if refusal is not None and refusal.drafts:
        _django_request(request).__dict__.setdefault(_PENDING, []).append(refusal)


def log_pending(request) -> None:
    """Write the refusals the request left, in one transaction of their own, after its own has rolled back.

    Called by api.middleware.RefusalLogMiddleware, outside the request's transaction, for every path.
    """
    pending = request.__dict__.pop(_PENDING, [])
    if pending:
        with transaction.atomic():
            for refusal in pending:
                log_refusal(refusal)
