"""Pages of every list: `page` and `page_size`, declared once for the schema and checked as declared."""

from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination

PAGE_DESCRIPTION = "A page number from 1; a page past the last one is a 404."
PAGE_SIZE_DESCRIPTION = "Rows per page, a whole number from 1 (default 50); more than 200 is capped at 200."


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        # A size that is not a whole number from 1 is refused, not quietly replaced by the default: the
        # caller would otherwise believe it got the page it asked for.
        if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
            raise ValidationError({self.page_size_query_param: [f"{raw[:20]!r} is not accepted. {PAGE_SIZE_DESCRIPTION}"]})
        return min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        return [
            {"name": self.page_query_param, "required": False, "in": "query", "description": PAGE_DESCRIPTION,
             "schema": {"type": "integer", "minimum": 1}},
            {"name": self.page_size_query_param, "required": False, "in": "query", "description": PAGE_SIZE_DESCRIPTION,
             "schema": {"type": "integer", "minimum": 1}},
        ]  # fmt: skip

    def get_paginated_response_schema(self, schema):
        paginated = super().get_paginated_response_schema(schema)
        # DRF always sends all four keys; next and previous are null at either end.
        paginated["required"] = ["count", "next", "previous", "results"]
        paginated["properties"]["count"]["minimum"] = 0
        return paginated


# For views that paginate by hand (APIView rather than a viewset's list), where drf-spectacular cannot tell.
PAGE_PARAMETERS = [
    OpenApiParameter("page", {"type": "integer", "minimum": 1}, description=PAGE_DESCRIPTION),
    OpenApiParameter("page_size", {"type": "integer", "minimum": 1}, description=PAGE_SIZE_DESCRIPTION),
]
