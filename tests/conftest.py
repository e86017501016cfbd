"""Shared fixtures. `services` tests use the real PostgreSQL and Redis chosen by run_with_services."""

from __future__ import annotations

import os

import pytest

SERVICES = os.environ.get("SG_SERVICES") == "1"
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config):
    if CI and not SERVICES:
        pytest.exit(
            "CI=true needs PostgreSQL and Redis: run the suite through `make test`", returncode=2
        )


def pytest_collection_modifyitems(config, items):
    """On a laptop without the services, their tests are skipped with a reason (never in CI)."""
    if SERVICES:
        return
    reason = "PostgreSQL/Redis not reachable (run through `make test` with the services up)"
    for item in items:
        if "services" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def demo(db):
    """The full demo seed: hospitals, hubs, staff and patients."""
    from community.seed import seed_demo

    return seed_demo()


@pytest.fixture(autouse=True)
def _test_settings(request):
    """Fast password hashing (demo users are created per test; PBKDF2's deliberate slowness
    would dominate the run) and English as the default language, so assertions on messages
    do not depend on the zh-hans default; tests of the Chinese UI ask for it explicitly.
    Skipped when pytest-django is not loaded (the Django-free device tests alone)."""
    if not request.config.pluginmanager.hasplugin("django"):
        return
    settings = request.getfixturevalue("settings")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.LANGUAGE_CODE = "en"


CHEN = "440106195803120021"  # 陈美玲, Tianhe hub
LI = "440304196207150032"  # 李建国, Futian hub


@pytest.fixture
def bridge_token(demo):
    """A bridge for 陈美玲's household; returns its bearer token."""
    from clinic.models import Patient
    from devices.models import Bridge

    bridge = Bridge(name="陈美玲家")
    token = bridge.issue_token()
    bridge.save()
    bridge.patients.set([Patient.objects.get(resident_id=CHEN)])
    return token


@pytest.fixture
def bridge_client(client, bridge_token):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {bridge_token}"
    return client
