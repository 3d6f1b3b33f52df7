"""Input fields and a strict serializer whose errors say what would be accepted."""

from rest_framework import parsers, serializers
from rest_framework.exceptions import ParseError
from rest_framework.settings import api_settings

from consent.services import SHARING_NOT_PERMITTED, asks_to_share_with_benefits_agency

# Set by the service from the records, never by the caller (OWASP API3: mass assignment). Each is refused by
# name with a 400, not silently dropped, so a client that believes it set one learns at once that it did not.
SERVER_SET_FIELDS = frozenset({
    "id", "pk", "uuid", "status", "voluntariness", "access",
    "created_at", "updated_at", "recorded_at", "recorded_by", "decided_at", "decided_by", "identifiers_erased_at",
    "provider", "team", "assigned", "body_sha256",
    "consents", "withdrawals", "voluntariness_checks", "discharge", "decline", "superseded_by",
})  # fmt: skip


class ChoiceField(serializers.ChoiceField):
    def to_internal_value(self, data):
        if data == "" and self.allow_blank:
            return ""
        key = str(data)
        if key not in self.choice_strings_to_values:
            raise serializers.ValidationError(
                f"{str(data)[:100]!r} is not accepted; choose one of: {', '.join(self.choice_strings_to_values)}."
            )
        return self.choice_strings_to_values[key]


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo or an attempt to set status is a 400, not ignored."""

    refuses_unknown_fields = True  # said in the schema too (api.schema): additionalProperties false

    def validate_empty_values(self, data):
        # A JSON null body would otherwise get DRF's bare "No data provided".
        if data is None and self.parent is None:
            raise serializers.ValidationError({"non_field_errors": [self._send_an_object()]})
        return super().validate_empty_values(data)

    def _send_an_object(self) -> str:
        return f"Send a JSON object with the fields {', '.join(self.fields)}."

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": [self._send_an_object()]})
        errors = {}
        for key in data:
            if key in self.fields:
                continue
            if asks_to_share_with_benefits_agency(key):
                errors[key] = [SHARING_NOT_PERMITTED]
            elif key in SERVER_SET_FIELDS:
                errors[key] = [f"{key} is set by the service from the records and cannot be sent."]
            else:
                errors[key] = [f"Unknown field; accepted fields: {', '.join(self.fields)}."]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as error:
            errors = {**error.detail, **errors}
            raise serializers.ValidationError(errors) from None
        if errors:
            raise serializers.ValidationError(errors)
        return value


class TextField(serializers.CharField):
    """Free text: bounded, and without control characters (other than line breaks and tabs)."""

    # The same rule as to_internal_value's, stated in the schema (api.schema merges schema_extra), so a generated
    # client or a fuzzer knows what text is accepted: something other than spaces, and no control character.
    schema_extra = {
        "pattern": r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*[^\s\u0000-\u001f\u007f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$"
    }

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if any(ord(ch) < 32 and ch not in "\n\r\t" for ch in value) or "\x7f" in value:
            raise serializers.ValidationError("Control characters are not accepted; send plain text.")
        return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, except that a body nested deeper than Python's decoder goes is a 400, not a 500.

    A few kilobytes of "[[[[..." exhaust the recursion limit of json.loads, and the RecursionError would
    otherwise escape every handler.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(
                "JSON parse error - it is nested too deeply; send a flat object with the documented fields"
            ) from None


def parser_classes() -> list:
    """The configured parsers with the JSON one replaced by the one above."""
    return [JSONParser if parser is parsers.JSONParser else parser for parser in api_settings.DEFAULT_PARSER_CLASSES]


def parsed(input_class, data) -> dict:
    """The validated values of a request's body or query, or the 400 naming each field."""
    values = input_class(data=data)
    values.is_valid(raise_exception=True)
    return dict(values.validated_data)
