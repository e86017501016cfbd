"""The CapabilityStatement, built from the same tables the server uses, so it lists exactly
what works."""

from __future__ import annotations

from django.conf import settings

from fhir import params
from fhir.search import PROJECTED_PARAMS

_TYPE_NAMES = {
    params.TOKEN: "token",
    params.DATE: "date",
    params.REFERENCE: "reference",
    params.QUANTITY: "quantity",
    params.STRING: "string",
}


def capability_statement() -> dict:
    resources = []
    for rtype, spec in sorted(params.STORED_TYPES.items()):
        resources.append(
            {
                "type": rtype,
                "versioning": "versioned",
                "readHistory": True,
                "conditionalCreate": True,
                "interaction": [
                    {"code": c}
                    for c in (
                        "read",
                        "vread",
                        "history-instance",
                        "create",
                        "update",
                        "delete",
                        "search-type",
                    )
                ],
                "searchParam": [{"name": n, "type": _TYPE_NAMES[k]} for n, k, _ in spec]
                + [{"name": "_lastUpdated", "type": "date"}, {"name": "_id", "type": "token"}],
                "searchInclude": [f"{rtype}:{n}" for n, k, _ in spec if k == params.REFERENCE],
            }
        )
    for rtype, names in PROJECTED_PARAMS.items():
        entry = {
            "type": rtype,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [
                {
                    "name": n,
                    "type": "date"
                    if n in ("birthdate", "date")
                    else ("string" if n in ("name", "family", "given") else "token"),
                }
                for n in names
            ],
        }
        if rtype == "Patient":
            entry["operation"] = [
                {
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                }
            ]
            entry["searchRevInclude"] = [f"{t}:patient" for t in sorted(params.STORED_TYPES)]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "publisher": "Smart Guangdong remote monitoring",
        "kind": "instance",
        "software": {"name": "smart-guangdong-rpm", "version": "0.1.0"},
        "implementation": {
            "description": "Smart Guangdong shared record",
            "url": settings.FHIR_BASE_URL,
        },
        "fhirVersion": "4.3.0",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "Session login for people; Bearer tokens for home bridges."
                },
                "resource": resources,
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
                "searchParam": [
                    {"name": n, "type": "special"}
                    for n in ("_count", "_sort", "_summary", "_elements", "_include", "_revinclude")
                ],
            }
        ],
    }
