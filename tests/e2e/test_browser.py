"""The screens in a real browser (Debian's Chromium driven by Playwright) against the real
stack: uvicorn, PostgreSQL, Redis (channels_redis) and a Celery worker.

One scenario, as a hub works: two doctors of the Tianhe hub and a clinician of its pilot
hospital have their pages open; a bridge uploads an abnormal reading; the alert appears on both
boards without a reload; one doctor acknowledges and the other board shows it at once; the
escalation appears in the hospital inbox; the patient's chart holds the new point. Screenshots
are saved under test-artifacts/screenshots. No page may log a console error.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.stack import ROOT, live_stack
from tests.fhir import bundles

pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.timeout(600)]

CHEN = "440106195803120021"
PASSWORD = "sgdemo2026"
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def stack():
    with live_stack("browser") as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A logged-in page that records console errors."""

    def __init__(self, browser, stack, username: str, language: str = "en"):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=language)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.base = stack.base_url
        self.page.goto(f"{self.base}/login/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", PASSWORD)
        self.page.click("button.primary")
        self.page.wait_for_load_state("networkidle")

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=path, full_page=True)
        return path


def upload(stack, systolic: float, minute: int) -> None:
    # Yesterday morning (China time): in the past, and inside the timeline's default 7 days.
    yesterday = (datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(days=1)).date().isoformat()
    body = bundles.upload(
        CHEN, 1, systolic=systolic, start_minute=minute, eui="00AA11BB22CC33DD", day=yesterday
    )
    response = httpx.post(
        f"{stack.base_url}/fhir/",
        content=json.dumps(body),
        headers={
            "Authorization": f"Bearer {stack.bridge_token}",
            "Content-Type": "application/fhir+json",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_alert_reaches_both_boards_ack_shows_everywhere_escalation_reaches_hospital(stack, browser):
    first = Page(browser, stack, "dr_tianhe")
    second = Page(browser, stack, "dr_tianhe2")
    hospital = Page(browser, stack, "clin_zsy")
    for p in (first, second, hospital):
        p.page.wait_for_selector("#live-state.on", timeout=20000)

    upload(stack, systolic=186, minute=1)
    systolic = "#alert-queue tbody tr:has-text('陈美玲'):has-text('Systolic')"
    for p in (first, second):
        p.page.wait_for_selector(systolic, timeout=20000)
    row = f"#alert-{first.page.get_attribute(systolic, 'data-alert-id')}"
    assert "critical" in first.page.inner_text(row)
    first.shot("board-new-alert")

    first.page.click(f"{row} button.ack")
    # the status cell, not the row: the row's assign menu lists every doctor's name
    second.page.wait_for_selector(f"{row} td.status:has-text('王志强')", timeout=10000)
    assert "acknowledged" in second.page.inner_text(f"{row} td.status")
    second.shot("board-second-doctor-sees-ack")

    first.page.click(f"{row} summary")
    first.page.fill(f"{row} form[data-action=escalate] input[name=reason]", "SBP 186, headache")
    first.page.click(f"{row} form[data-action=escalate] button")
    hospital.page.wait_for_selector(row, timeout=20000)
    assert "escalated" in hospital.page.inner_text(f"{row} td.status")
    hospital.shot("hospital-inbox-escalation")

    link = first.page.get_attribute(f"{row} a", "href")
    first.page.goto(f"{stack.base_url}{link}")
    first.page.wait_for_selector("#charts[data-loaded-at]")
    points = first.page.get_attribute("[data-chart=bp]", "data-points")
    assert int(points) >= 1
    data = first.page.evaluate(
        "url => fetch(url).then(r => r.json())", f"{link}vitals.json?range=30d"
    )
    assert 186 in [v for _, v in data["series"]["systolic_bp"]]
    first.shot("patient-timeline")

    for p in (first, second, hospital):
        assert p.errors == [], p.errors


@pytest.mark.parametrize(
    "username, path",
    [
        ("dr_tianhe", "/hub/"),
        ("clin_zsy", "/hospital/"),
        ("chenmeiling", "/me/"),
        ("admin", "/admin/"),
    ],
)
def test_pages_have_both_languages_and_no_console_errors(stack, browser, username, path):
    english = Page(browser, stack, username, "en")
    english.page.goto(f"{stack.base_url}{path}")
    english.page.wait_for_load_state("networkidle")
    assert english.page.get_attribute("html", "lang") == "en"
    chinese = Page(browser, stack, username, "zh-CN")
    chinese.page.goto(f"{stack.base_url}{path}")
    chinese.page.wait_for_load_state("networkidle")
    assert chinese.page.get_attribute("html", "lang") == "zh-hans"
    heading = chinese.page.inner_text("h1")
    assert re.search(r"[\u4e00-\u9fff]", heading), f"{path} heading is not translated: {heading!r}"
    chinese.shot(f"zh-{username}")
    assert english.errors == [] and chinese.errors == []
