"""Query parameters are part of the contract: an operation accepts those its schema declares and no other.

A parameter the operation does not know is a 400 naming the ones it accepts, as an unknown body field is,
never silently ignored (a `?search=` that did nothing would return every row and look like a match).
The accepted names are read back from the OpenAPI schema itself (api.schema), so the documentation and
the check are one declaration.
"""

from django.http import Http404
from rest_framework import exceptions
from rest_framework.settings import api_settings

from api.schema import declared_query_parameters
from colocation.selectors import is_benefits_agency_account


def _accepted(declared: dict) -> str:
    return ", ".join(sorted(declared)) if declared else "none"


def _typed(schema: dict) -> bool:
    """Whether a parameter's schema asks for more than any text: a date, a number, one of a list, a pattern."""
    return schema.get("type") not in (None, "string") or any(key in schema for key in ("format", "enum", "pattern", "$ref"))


def undeclared_query_errors(declared: dict[str, dict], query) -> dict[str, list[str]]:
    """Each query parameter that is not declared, or that is empty where a value is typed, or a format not offered."""
    errors = {}
    for name, values in query.lists():
        if name not in declared:
            errors[name[:100]] = [f"Unknown query parameter; this operation accepts: {_accepted(declared)}."]
        elif "" in values and _typed(declared[name]):
            # django-filter would read an empty value as "not given" and quietly return everything.
            errors[name] = [f"{name} is empty: give a value or leave the parameter out."]
    format_name = api_settings.URL_FORMAT_OVERRIDE
    offered = declared.get(format_name, {}).get("enum")
    if format_name in query and offered and format_name not in errors:
        asked = query.get(format_name)
        if asked not in offered:
            errors[format_name] = [f"{str(asked)[:20]!r} is not offered here; choose one of: {', '.join(offered)}."]
    return errors


class DeclaredQueryOnly:
    """Mixed into every API view: refuse query parameters the operation's schema does not declare.

    Checked once the caller is known (after authentication, permissions and throttling), before the handler
    reads or writes anything. On a view that refuses benefits-agency accounts first (`refuses_benefits_agency_first`),
    such an account is left to that refusal, so its attempt is logged and answered exactly as without the
    parameter.
    """

    refuses_benefits_agency_first = False

    def perform_content_negotiation(self, request, force=False):
        try:
            return super().perform_content_negotiation(request, force)
        except (Http404, exceptions.NotFound):
            # `?format=` names a format this view has no renderer for: answered as a 400 by initial(), once
            # the caller is known, instead of DRF's bare 404.
            return super().perform_content_negotiation(request, force=True)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if self.refuses_benefits_agency_first and is_benefits_agency_account(request.user):
            return
        declared = declared_query_parameters(self, request.method)
        if declared is None:
            return
        errors = undeclared_query_errors(declared, request.query_params)
        if errors:
            # Explained in JSON (every API view's first renderer), whichever format was asked for.
            renderer = self.get_renderers()[0]
            request.accepted_renderer, request.accepted_media_type = renderer, renderer.media_type
            raise exceptions.ValidationError(errors)
