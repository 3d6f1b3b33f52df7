"""The OpenAPI contract: what every operation takes and answers, errors included, in a form clients can use as it is.

- Every error answer of every operation is the one named `Error` component, as JSON, whatever formats the
  operation's success answers come in (api.errors writes that shape).
- Query parameters: those an operation's schema declares are the only ones it accepts. The schema is the
  single declaration: `declared_query_parameters` reads it back for api.query, which refuses any other
  parameter with a 400, so the documentation and the check cannot drift apart.
- Fields the contract requires but whose absence a service explains itself (the consent acknowledgements,
  say) carry `required_by_contract`, so the schema says they are required while the message stays the
  service's own.
- Nullable values are written so that strict OpenAPI 3.0 validators accept null where it is sent: `nullable`
  only next to a `type`, never beside `allOf`/`oneOf` alone (see `strict_nullable`).
"""

import threading
from contextvars import ContextVar

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny

# ---- the error shape --------------------------------------------------------------------------------------


@extend_schema_field(
    {
        "oneOf": [
            {"type": "array", "items": {"type": "string"}, "description": "What is wrong with the field and what it accepts."},
            {"type": "object", "additionalProperties": True, "description": "A nested object's fields, each as above."},
        ]
    }
)
class FieldErrors(serializers.Field):
    """A field's messages, or a nested object's fields with theirs."""


@extend_schema_serializer(component_name="Error")
class ErrorOutput(serializers.Serializer):
    """Every error answer of the API: what went wrong and what to send instead (api.errors)."""

    detail = serializers.CharField(help_text="What went wrong and what to do instead, in words a person can act on.")
    code = serializers.CharField(
        required=False, help_text="A stable code for some errors: locked_out, invalid_credentials, access_log_unavailable..."
    )
    errors = serializers.DictField(
        child=FieldErrors(),
        required=False,
        help_text="For a 400: each field or query parameter that needs correcting, with what it accepts.",
    )


ERROR_DESCRIPTIONS = {
    "400": "A field or query parameter needs correcting (an unknown one included): `errors` names each one and what it accepts.",
    "401": "No valid credentials: sign in with POST /api/v1/auth/token/ and send `Authorization: Token <token>`.",
    "403": "This account may not do this (a benefits-agency account never reaches client data).",
    "404": "Nothing with that id (or that page) that this account may see.",
    "406": "The Accept header names no format this operation answers in.",
    "413": "The request body is larger than the configured limit.",
    "415": "The request body is not JSON: send `Content-Type: application/json`.",
    "429": "Too many requests: wait for the number of seconds in the Retry-After header.",
    "503": "The service cannot answer now (the access log cannot be written, so nothing was read or changed): retry later.",
}


# ---- tags: one per kind of user ---------------------------------------------------------------------------

THERAPIST, LEAD, DPO, REVIEWER, ACCOUNT = "therapist", "clinical lead", "DPO", "reviewer", "account"
TAGS = [
    {"name": THERAPIST, "description": (
        "Therapists record each referral of a client assigned to them, the client's consent, voluntariness checks, "
        "withdrawals, a decline or a discharge, and hand the client a signed consent receipt.")},
    {"name": LEAD, "description": (
        "Clinical leads do what therapists do for their team's clients, assign clients to therapists, open a referral "
        "outside their assignment by break-glass (always logged and alerted), and freeze compliance-report snapshots.")},
    {"name": DPO, "description": (
        "Data-protection officers read their organisation's tamper-evident access log, work the alert queue, verify the "
        "hash chain, and answer subject-access requests. They never change clinical or consent records.")},
    {"name": REVIEWER, "description": (
        "Reviewers of a professional body read the compliance reports (small numbers suppressed) and stored snapshots "
        "of the pilots their body oversees; never a row about an individual client.")},
    {"name": ACCOUNT, "description": (
        "Signing in, the signed-in account, and the sites and pilots that every signed-in account may read, a "
        "benefits-agency account included: none of them holds client data.")},
]  # fmt: skip


# ---- strict nullable values -------------------------------------------------------------------------------

# Only null: `nullable` next to its `type`, as OpenAPI 3.0.3 requires, and an enum that leaves null alone.
NULL_ONLY = {"type": "object", "nullable": True, "enum": [None], "description": "null"}
_COMPOSITIONS = ("allOf", "oneOf", "anyOf")


def _accepts_null(schema: dict) -> bool:
    return schema.get("nullable") is True and "type" in schema


def strict_nullable(schema: dict) -> dict:
    """A nullable schema without a type of its own, rewritten as `oneOf` with a null-only member."""
    if not (schema.get("nullable") is True and "type" not in schema):
        return schema
    rest = {key: value for key, value in schema.items() if key != "nullable"}
    if "$ref" in rest:
        members = [{"$ref": rest.pop("$ref")}]
    elif "allOf" in rest and len(rest["allOf"]) == 1:
        members = rest.pop("allOf")
    elif "oneOf" in rest or "anyOf" in rest:
        members = rest.pop("oneOf", None) or rest.pop("anyOf")
    else:
        return schema
    if not any(_accepts_null(member) or member == NULL_ONLY for member in members):
        members = [*members, dict(NULL_ONLY)]
    return {**rest, "oneOf": members}


CONTRACT_KEY = "x-contract"


def _with_contract(schema: dict) -> dict:
    """A field's schema_extra merged in; a key given as None is removed (a default the contract does not allow)."""
    extra = schema.pop(CONTRACT_KEY, None)
    if not extra:
        return schema
    merged = {**schema, **extra}
    return {key: value for key, value in merged.items() if value is not None}


def _walk(value):
    if isinstance(value, dict):
        return strict_nullable(_with_contract({key: _walk(item) for key, item in value.items()}))
    if isinstance(value, list):
        return [_walk(item) for item in value]
    return value


# ---- components the serializers refer to by name ----------------------------------------------------------

WITHHELD = {"type": "string", "enum": ["*"], "description": (
    "Withheld by disclosure control: a count from 1 to 7, or a count withheld so that another cannot be "
    "worked out by subtraction (secondary suppression).")}  # fmt: skip
EXTRA_COMPONENTS = {
    "Withheld": WITHHELD,
    "PublishedCount": {
        "description": "A count as published: 0, a whole number rounded to the nearest 5, or `*` when withheld.",
        "oneOf": [{"type": "integer", "minimum": 0}, {"$ref": "#/components/schemas/Withheld"}],
    },
    "PublishedShare": {
        "description": "A share (0 to 1) computed from the published figures; `*` when it rests on a withheld count, "
        "null when there is nothing to divide by.",
        "oneOf": [{"type": "number", "minimum": 0, "maximum": 1, "nullable": True}, {"$ref": "#/components/schemas/Withheld"}],
    },
    "PublishedMedian": {
        "description": "A median in days; `*` when it rests on a withheld count, null when there is nothing to take it of.",
        "oneOf": [{"type": "number", "minimum": 0, "nullable": True}, {"$ref": "#/components/schemas/Withheld"}],
    },
}


class ContractCharField(serializers.CharField):
    """A CharField whose schema says more than its validation (a keyword argument, so copies of it keep it)."""

    def __init__(self, *, schema_extra: dict, **kwargs):
        self.schema_extra = schema_extra
        super().__init__(**kwargs)


def code_field(*values: str, **kwargs) -> serializers.CharField:
    """A field holding one of a few codes of an outside standard (FHIR, Kantara), listed inline in the schema."""
    return ContractCharField(schema_extra={"enum": list(values)}, **kwargs)


def component_ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def enum_descriptions(result: dict) -> None:
    """x-enum-descriptions beside each enum drf-spectacular described as "* `value` - label" lines."""
    for schema in result.get("components", {}).get("schemas", {}).values():
        values, description = schema.get("enum"), schema.get("description", "")
        if not values or "x-enum-descriptions" in schema:
            continue
        labels = {}
        for line in description.splitlines():
            if line.startswith("* `") and "` - " in line:
                value, label = line[3:].split("` - ", 1)
                labels[value] = label
        if labels:
            schema["x-enum-descriptions"] = [labels.get(str(value), str(value)) for value in values]


def _component_name(name: str) -> str:
    """Names a client reads: Referral, not ReferralOutput; ConsentInput, not ConsentInputRequest."""
    for suffix, replacement in (("OutputList", "List"), ("Output", ""), ("InputRequest", "Input")):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)] + replacement
    return name


def _renamed_refs(value, renames: dict[str, str]):
    if isinstance(value, dict):
        ref = value.get("$ref", "")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            value = {**value, "$ref": f"#/components/schemas/{renames.get(name, name)}"}
        return {key: _renamed_refs(item, renames) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed_refs(item, renames) for item in value]
    return value


def rename_components(result: dict) -> None:
    schemas = result["components"]["schemas"]
    renames = {name: _component_name(name) for name in schemas}
    if len(set(renames.values())) != len(renames):  # two would collide: keep every name as it is
        return
    result["components"]["schemas"] = {renames[name]: schema for name, schema in schemas.items()}
    for key in ("paths", "components"):
        result[key] = _renamed_refs(result[key], renames)


def named_parameter_enums(result: dict) -> None:
    """A query parameter whose values are exactly a named enum's refers to it (a client gets ReferralStatusEnum)."""
    by_values = {
        tuple(sorted(map(str, schema["enum"]))): name
        for name, schema in result["components"]["schemas"].items()
        if name.endswith("Enum") and schema.get("enum")
    }
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                values = parameter.get("schema", {}).get("enum")
                name = values and by_values.get(tuple(sorted(map(str, values))))
                if name and parameter["name"] != "format":
                    parameter["schema"] = component_ref(name)


def postprocess(result, generator, request, public):
    """The tags, strict nullable values, the shared components, labelled enums, plain component names."""
    result["tags"] = TAGS
    result.setdefault("components", {}).setdefault("schemas", {}).update(EXTRA_COMPONENTS)
    result["paths"] = _walk(result.get("paths", {}))
    result["components"]["schemas"] = _walk(result["components"]["schemas"])
    enum_descriptions(result)
    rename_components(result)
    named_parameter_enums(result)
    return result


# ---- the schema of each operation -------------------------------------------------------------------------

# (view class, action, method) -> {query parameter name: its schema}: collected while a schema is generated for
# the purpose (in that thread only), then published whole, so no request ever reads a half-built table.
_COLLECTING: ContextVar[dict | None] = ContextVar("collecting_query_parameters", default=None)
_DECLARED_QUERY: dict[tuple, dict[str, dict]] | None = None
_BUILDING = threading.Lock()


def _operation_key(view, method: str) -> tuple:
    return type(view), getattr(view, "action", None), method.upper()


def declared_query_parameters(view, method: str) -> dict[str, dict] | None:
    """The query parameters the schema declares for this view's operation, or None if it documents none."""
    global _DECLARED_QUERY
    method = "GET" if method.upper() == "HEAD" else method.upper()
    if _DECLARED_QUERY is None:
        with _BUILDING:
            if _DECLARED_QUERY is None:
                from drf_spectacular.generators import SchemaGenerator  # noqa: PLC0415 (loads every view: only when first asked)

                collected: dict = {}
                token = _COLLECTING.set(collected)
                try:
                    SchemaGenerator().get_schema(request=None, public=True)
                finally:
                    _COLLECTING.reset(token)
                _DECLARED_QUERY = collected
    return _DECLARED_QUERY.get(_operation_key(view, method))


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, with every error answer the operation can give typed as the Error component."""

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # What a field's own validation cannot say but the contract does (e.g. "must include treatment"),
        # merged by postprocess() once drf-spectacular has extracted its enums, so these stay inline.
        extra = getattr(field, "schema_extra", None)
        if extra and isinstance(schema, dict):
            schema = {**schema, CONTRACT_KEY: extra}
        return schema

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction != "request":
            return schema
        contract = [name for name, field in serializer.fields.items() if getattr(field, "required_by_contract", False)]
        if contract:
            schema["required"] = sorted(set(schema.get("required", [])) | set(contract))
        if getattr(serializer, "refuses_unknown_fields", False):
            schema["additionalProperties"] = False  # an unknown field is a 400 naming the accepted ones
        return schema

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            typed = getattr(self.view, "path_parameter_schemas", {}).get(parameter["name"])
            if parameter["in"] == "path" and typed:
                parameter["schema"] = {key: value for key, value in typed.items() if key != "description"}
                parameter["description"] = typed.get("description", parameter.get("description", ""))
        responses = operation.setdefault("responses", {})
        for code in self._error_codes(operation):
            responses.setdefault(code, {})
        error = self.resolve_serializer(ErrorOutput, "response")
        for code, response in responses.items():
            if code.isdigit() and int(code) >= 400:
                description = response.get("description") or ERROR_DESCRIPTIONS.get(code, "An error.")
                responses[code] = {"description": description, "content": {"application/json": {"schema": error.ref}}}
        collecting = _COLLECTING.get()
        if collecting is not None:
            collecting[_operation_key(self.view, method)] = {
                parameter["name"]: parameter.get("schema", {})
                for parameter in operation.get("parameters", [])
                if parameter["in"] == "query"
            }
        return operation

    def _error_codes(self, operation: dict) -> set[str]:
        parameters = {(p["in"], p["name"]) for p in operation.get("parameters", [])}
        # Every operation: an unknown query parameter, an Accept header it cannot answer, throttling, and
        # the access log failing closed.
        codes = {"400", "406", "429", "503"}
        if not any(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes |= {"401", "403"}
        if "requestBody" in operation:
            codes |= {"413", "415"}
        if any(where == "path" for where, _ in parameters) or ("query", "page") in parameters:
            codes.add("404")  # an unknown id, or a page past the last one
        return codes
