"""The OpenAPI schema documents the error answers each operation can give, not only its success.

A client (and the schemathesis run in the suite) must be able to rely on the schema: every status code an
operation returns is listed there with the body it carries. The errors all share one shape (api.errors).
"""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorOutput(serializers.Serializer):
    """The project's error shape (api.errors.exception_handler)."""

    detail = serializers.CharField(help_text="What went wrong and what to do instead.")
    code = serializers.CharField(required=False, help_text="A stable code for some errors, e.g. locked_out.")
    errors = serializers.DictField(required=False, help_text="For a 400: each field that needs correcting, with what it accepts.")


ERROR_DESCRIPTIONS = {
    "400": "A field or query parameter needs correcting; `errors` names each one and what it accepts.",
    "401": "No valid credentials: sign in with POST /api/v1/auth/token/ and send Authorization: Token <token>.",
    "403": "This account may not do this (a benefits-agency account never sees client data).",
    "404": "Nothing found with that id (or that page), or nothing this account may see.",
    "413": "The request body is larger than the configured limit.",
    "415": "The request body is not JSON: send Content-Type: application/json.",
    "429": "Too many requests: wait for the time given in the Retry-After header.",
}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, with the error answers an operation can give added to its responses."""

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        for code in self._error_codes(operation):
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorOutput, code)
                responses[code]["description"] = ERROR_DESCRIPTIONS[code]
        return operation

    def _error_codes(self, operation: dict) -> set[str]:
        parameters = {(p["in"], p["name"]) for p in operation.get("parameters", [])}
        codes = {"429"}  # every view is throttled
        if not any(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes |= {"401", "403"}
        if "requestBody" in operation:
            codes |= {"400", "413", "415"}
        if any(where == "query" and name not in ("page", "page_size", "format") for where, name in parameters):
            codes.add("400")  # a filter or period that does not parse
        if any(where == "path" for where, _ in parameters) or parameters & {("query", "page"), ("query", "format")}:
            codes.add("404")  # an unknown id, a page past the last one, or a format not offered
        return codes
