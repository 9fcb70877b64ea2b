"""Content negotiation with a shortcut for the API's everyday request.

With one renderer (JSON; the browsable API is added only with DEBUG) and an `Accept`
header that is absent, `*/*` or `application/json`, DRF's negotiation always ends in
the JSON renderer and `application/json`, after parsing the header and ordering its
media types by precedence: about a twentieth of a recommendation request's CPU.
Those requests skip straight to that answer; every other request (another media
type, parameters, several types, `?format=`, a format suffix) is negotiated by DRF
as before, so a 406 stays a 406.
"""

from rest_framework.negotiation import DefaultContentNegotiation

_PLAIN_ACCEPTS = frozenset({"*/*", "application/json"})


class JsonShortcutNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        if len(renderers) == 1 and not format_suffix:
            renderer = renderers[0]
            accept = request.META.get("HTTP_ACCEPT", "*/*")
            if (
                renderer.media_type == "application/json"
                and accept in _PLAIN_ACCEPTS
                and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
            ):
                return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)
