"""Nothing of the access log is registered with the Django admin, on purpose.

The log says who looked at which client, so it is read only by each provider's DPO through the API (their
own organisation's chain, nothing else); an admin page would show every organisation's log to any staff
superuser. Events and dispositions are append-only in the database too, so there is nothing to edit.
"""
