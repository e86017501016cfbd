"""FHIR test fixtures live in tests/conftest.py (shared with the page tests)."""

from tests.conftest import CHEN, LI

__all__ = ["CHEN", "LI"]
