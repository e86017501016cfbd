"""Validation of incoming resources with fhir.resources (R4B)."""

from __future__ import annotations

from functools import lru_cache

from fhir.errors import BadRequest

MAX_DEPTH = 24


@lru_cache(maxsize=64)
def _model(resource_type: str):
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError):
        return None


def depth(node, limit: int = MAX_DEPTH) -> int:
    """Nesting depth, stopping early past the limit (deeply nested JSON is refused, not walked)."""
    stack = [(node, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


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
    if depth(body) > MAX_DEPTH:
        raise BadRequest(f"the resource is nested deeper than {MAX_DEPTH} levels")
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
