"""Hardening: login lockout, CSP, rate limits with Retry-After, body size limits, CSRF on
session writes, and a clean `check --deploy` with production settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.conftest import FHIR, register, token_for

ROOT = Path(__file__).resolve().parents[2]


def test_login_locks_after_repeated_failures_even_for_the_right_password(client, demo, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        response = client.post("/login/", {"username": "dr_tianhe", "password": "wrong"})
        assert response.status_code == 200  # the form again, with an error
    response = client.post("/login/", {"username": "dr_tianhe", "password": "sgdemo2026"})
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    # another account from another address is not affected
    other = client.__class__(REMOTE_ADDR="10.0.0.9")
    response = other.post("/login/", {"username": "dr_futian", "password": "sgdemo2026"})
    assert response.status_code == 302


def test_lockout_counts_per_address_too(client, demo, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for name in ("a", "b", "c"):
        client.post("/login/", {"username": f"guess-{name}", "password": "x"})
    response = client.post("/login/", {"username": "dr_tianhe", "password": "sgdemo2026"})
    assert "_auth_user_id" not in client.session, response.status_code


def test_a_successful_login_clears_the_count(client, demo, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(2):
        client.post("/login/", {"username": "dr_tianhe", "password": "wrong"})
    assert (
        client.post("/login/", {"username": "dr_tianhe", "password": "sgdemo2026"}).status_code
        == 302
    )
    client.logout()
    from clinic import lockout

    assert not lockout.is_locked("dr_tianhe")


def test_pages_carry_a_content_security_policy_without_inline_script(client, demo):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.get(username="chenmeiling"))
    response = client.get("/me/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    html = response.content.decode()
    import re

    # json_script data blocks are not executed, so CSP allows them
    inline = r'<script(?![^>]*\bsrc=)(?![^>]*type="application/json")[^>]*>'
    assert not re.search(inline, html), "inline <script> in /me/"
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), "inline event handler in /me/"


def test_templates_have_no_inline_scripts():
    """Every page loads its JavaScript from static files (CSP script-src 'self')."""
    import re

    offenders = []
    for path in (ROOT / "frontend" / "templates").rglob("*.html"):
        text = path.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", text):
            offenders.append(str(path.relative_to(ROOT)))
        if re.search(r"<[^>]+\son[a-z]+\s*=", text):
            offenders.append(f"{path.relative_to(ROOT)} (event handler attribute)")
    assert offenders == []


def test_bridge_rate_limit_answers_429_with_retry_after(bridge_client, settings):
    settings.FHIR_RATE_LIMITS = {"bridge": "3/60", "system": "3/60"}
    statuses = [bridge_client.get("/fhir/metadata").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = bridge_client.get("/fhir/metadata")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["issue"][0]["code"] == "throttled"


def test_client_rate_limit_is_per_client(client, world, settings):
    key_a = register(world.zsy, "system/*.rs", name="A")
    key_b = register(world.szph, "system/*.rs", name="B")
    a, b = token_for(client, key_a, "system/*.rs"), token_for(client, key_b, "system/*.rs")
    settings.FHIR_RATE_LIMITS = {"bridge": "2/60", "system": "2/60"}
    for _ in range(2):
        assert client.get("/fhir/metadata", HTTP_AUTHORIZATION=f"Bearer {a}").status_code == 200
    assert client.get("/fhir/metadata", HTTP_AUTHORIZATION=f"Bearer {a}").status_code == 429
    assert client.get("/fhir/metadata", HTTP_AUTHORIZATION=f"Bearer {b}").status_code == 200


def test_oversized_bodies_are_413(bridge_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = {"resourceType": "Bundle", "type": "transaction", "entry": [], "pad": "x" * 2000}
    response = bridge_client.post("/fhir/", json.dumps(body), content_type=FHIR)
    assert response.status_code == 413


def test_session_writes_to_fhir_need_the_csrf_token(demo):
    from django.contrib.auth import get_user_model
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    c.force_login(get_user_model().objects.get(username="admin"))
    response = c.post("/fhir/", json.dumps({"resourceType": "Bundle"}), content_type=FHIR)
    assert response.status_code == 403
    assert "CSRF" in response.json()["issue"][0]["diagnostics"]


@pytest.mark.timeout(120)
def test_check_deploy_is_clean_with_production_settings():
    env = {
        **os.environ,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "x" * 20 + "-production-secret-for-the-check-only-" + "y" * 20,
        "DJANGO_ALLOWED_HOSTS": "rpm.example.org",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("secure_cookies", "expected"), [(None, "True True"), ("false", "False False")]
)
def test_production_cookies_are_secure_unless_served_on_loopback_http(secure_cookies, expected):
    """`make up` runs the production settings over plain http on 127.0.0.1, where a browser
    would never send a Secure cookie back; everywhere else they stay Secure."""
    env = {
        **os.environ,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "x" * 20 + "-production-secret-for-the-check-only-" + "y" * 20,
    }
    env.pop("DJANGO_SECURE_COOKIES", None)
    if secure_cookies is not None:
        env["DJANGO_SECURE_COOKIES"] = secure_cookies
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; "
            "print(settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected


@pytest.mark.parametrize("failing", ["add", "incr"])
def test_the_bridge_rate_limit_lets_readings_through_when_the_cache_is_down(
    monkeypatch, settings, failing
):
    """Every cache call that can fail is inside the guard, including the expired-key retry."""
    from clinic.access import Actor
    from fhir import auth

    class DownCache:
        adds = 0

        def add(self, *args, **kwargs):
            self.adds += 1
            if failing == "add" or self.adds > 1:
                raise ConnectionError("redis down")
            return False

        def incr(self, *args, **kwargs):
            if failing == "incr":
                raise ValueError("key expired")  # then the retry's add meets the outage
            return 1

    settings.FHIR_RATE_LIMITS = {"bridge": "1/60"}
    monkeypatch.setattr(auth, "cache", DownCache())
    auth.throttle(Actor(kind="bridge", id="bridge/1"))  # no exception: the reading goes through
