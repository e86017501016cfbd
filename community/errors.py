"""The one error type of the alert actions, with the HTTP status a view maps it to."""

from __future__ import annotations


class AlertError(Exception):
    """A request on alerts that cannot be carried out; ``code`` is stable for clients."""

    code = "alert_error"
    http_status = 400


class AlertNotAccessible(AlertError):
    """No such alert, or not one the user may act on: the two are one answer, so ids don't leak."""

    code = "not_found"
    http_status = 404


class InvalidTransition(AlertError):
    """The alert's status does not allow the action (e.g. acknowledging a resolved alert)."""

    code = "invalid_transition"
    http_status = 409


class InvalidRequest(AlertError):
    """The request itself is wrong: a missing note, an unknown assignee, a past snooze end."""

    code = "invalid_request"
    http_status = 400
