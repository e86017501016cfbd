"""Validation of incoming resources with fhir.resources (R4B)."""

from __future__ import annotations

import re
from functools import lru_cache

from fhir.errors import BadRequest

MAX_DEPTH = 24
# FHIR strings may hold no control character but tab, CR and LF (R4B datatypes, "string");
# fhir.resources lets them through, and PostgreSQL's jsonb refuses \u0000 with a 500.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@lru_cache(maxsize=64)
def _model(resource_type: str):
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError):
        return None


def check_structure(node, limit: int = MAX_DEPTH) -> None:
    """One walk over the JSON: refuse nesting past `limit` (stopping there, not walking it all)
    and strings (keys or values) holding a control character FHIR forbids."""
    stack = [(node, 1)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            raise BadRequest(f"the resource is nested deeper than {limit} levels")
        if isinstance(item, str):
            found = _FORBIDDEN.search(item)
            if found:
                raise BadRequest(
                    f"control character U+{ord(found.group()):04X} is not allowed in FHIR "
                    f"strings (found in {item[:40]!r})"
                )
        elif isinstance(item, dict):
            stack.extend((k, level) for k in item)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)


def validate_resource(body, expected_type: str | None = None) -> dict:
    """Check the JSON is a valid R4B resource of the expected type; return it unchanged."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object (a FHIR resource)")
    resource_type = body.get("resourceType")
    if not isinstance(resource_type, str):
        raise BadRequest("resourceType is missing", expression="resourceType")
    if expected_type and resource_type != expected_type:
        raise BadRequest(
            f"resourceType is {resource_type!r}, expected {expected_type!r}",
            expression="resourceType",
        )
    check_structure(body)
    model = _model(resource_type)
    if model is None:
        raise BadRequest(f"unknown resourceType {resource_type!r}", expression="resourceType")
    try:
        model.model_validate(body)
    except Exception as exc:  # pydantic.ValidationError and fhir_core's own errors
        errors = getattr(exc, "errors", None)
        if callable(errors):
            parts = [
                f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                for e in errors()[:5]
            ]
            message = "; ".join(parts)
        else:
            message = str(exc).splitlines()[0]
        raise BadRequest(f"invalid {resource_type}: {message}") from None
    return body
