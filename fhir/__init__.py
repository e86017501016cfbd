"""The shared record: FHIR normalisation, storage, search and the FHIR REST API.

This folder shares its import name with the `fhir.resources` distribution, so it is a
pkgutil-style namespace: `fhir.resources.R4B` and our own `fhir.store` both import.
Never add a module named `fhir/resources.py`.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
