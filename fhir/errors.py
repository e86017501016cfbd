"""One small exception tree for the FHIR layer; each error knows its HTTP status and renders
as an OperationOutcome (as fhirpy's `exceptions.py` does on the client side)."""

from __future__ import annotations


class FhirError(Exception):
    status = 400
    code = "invalid"  # OperationOutcome.issue.code (http://hl7.org/fhir/issue-type)

    def __init__(self, diagnostics: str, *, expression: str | None = None):
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = expression

    def outcome(self) -> dict:
        issue = {"severity": "error", "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = [self.expression]
        return {"resourceType": "OperationOutcome", "issue": [issue]}


class BadRequest(FhirError):
    status, code = 400, "invalid"


class NotAuthenticated(FhirError):
    status, code = 401, "login"


class Forbidden(FhirError):
    status, code = 403, "forbidden"


class NotFound(FhirError):
    status, code = 404, "not-found"


class Gone(FhirError):
    status, code = 410, "deleted"


class MethodNotAllowed(FhirError):
    status, code = 405, "not-supported"


class Conflict(FhirError):
    status, code = 409, "conflict"


class PreconditionFailed(FhirError):
    status, code = 412, "conflict"


class TooLarge(FhirError):
    status, code = 413, "too-costly"


class Unprocessable(FhirError):
    status, code = 422, "processing"


def outcome(severity: str, code: str, diagnostics: str) -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }
