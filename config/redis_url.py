"""Redis URL options, set one by one so an operator's own value always wins."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def with_defaults(url: str, **defaults: str | int) -> str:
    """`url` with each of `defaults` added as a query option unless the URL already sets it."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = {key for key, _ in query}
    query += [(key, str(value)) for key, value in defaults.items() if key not in given]
    return urlunsplit(parts._replace(query=urlencode(query)))
