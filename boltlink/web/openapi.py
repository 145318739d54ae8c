"""/openapi.json as the API really answers: problems as problem+json, and the answers that are not JSON.

quart-schema documents every response model as application/json and knows
only responses that carry a model. Errors are RFC 9457 problems
(application/problem+json), and some answers are no JSON at all (a redirect,
a 204, the Prometheus text, a QR image, a CSV export): document_media names
those, so a client generated from the document, or schemathesis checking the
server against it (tests/fuzz/), expects what it gets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from quart_schema.openapi import OpenAPIProvider
from werkzeug.routing.rules import Rule

from boltlink.web.models import Problem
from boltlink.web.problems import PROBLEM_JSON

T = TypeVar("T", bound=Callable[..., Any])

_MEDIA_ATTRIBUTE = "_boltlink_media_responses"


def document_media(status: int, description: str, *media_types: str) -> Callable[[T], T]:
    """Document a response that no pydantic model describes: its status and media types (none: no body).

    For a status that also has a model (document_response), the media types are added beside its JSON.
    """

    def decorator(func: T) -> T:
        responses = dict(getattr(func, _MEDIA_ATTRIBUTE, {}))
        responses[status] = (description, media_types)
        setattr(func, _MEDIA_ATTRIBUTE, responses)
        return func

    return decorator


class BoltlinkOpenAPIProvider(OpenAPIProvider):
    def build_response_object(self, model: Any, headers_model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        response, components = super().build_response_object(model, headers_model)
        if model is Problem:
            response["content"] = {PROBLEM_JSON: response["content"].pop("application/json")}
        return response, components

    def build_paths(self, rule: Rule) -> tuple[dict, dict]:
        paths, components = super().build_paths(rule)
        media = getattr(self._app.view_functions[rule.endpoint], _MEDIA_ATTRIBUTE, {})
        for operations in paths.values():
            for operation in operations.values():
                # The methods of one rule share one responses dict: each gets its own before it grows.
                responses = operation["responses"] = dict(operation["responses"])
                for status, (description, media_types) in media.items():
                    response = responses[status] = dict(responses.get(status, {}))
                    response["description"] = response.get("description") or description
                    if media_types:
                        response["content"] = {**response.get("content", {}), **{t: {} for t in media_types}}
        return paths, components
