"""What OPTIONS answers, on every route: the view's name, what it renders and parses. Always JSON.

DRF's SimpleMetadata also describes the POST body by building the view's serializer, which fails (a 500) on a
view without one, and its answer was rendered with whatever renderer the request negotiated: a CSV or HTML
report renderer given this small dict instead of a report failed too. The OpenAPI schema (/api/schema/)
describes the bodies; OPTIONS says only what any view can say, as JSON.
"""

from rest_framework.metadata import BaseMetadata
from rest_framework.renderers import JSONRenderer


class Metadata(BaseMetadata):
    def determine_metadata(self, request, view):
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return {
            "name": view.get_view_name(),
            "description": view.get_view_description(),
            "renders": [renderer.media_type for renderer in view.renderer_classes],
            "parses": [parser.media_type for parser in view.parser_classes],
            "documentation": "/api/docs/",
        }
