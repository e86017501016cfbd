"""Time for the hub board to show a new alert: upload accepted → row visible in a real browser.

Run: `python -m bench.bench_board [--rounds 20]`. Starts the product as in cluster mode (uvicorn
workers, a Celery worker, PostgreSQL, channels_redis), opens the Tianhe hub board in Debian's
Chromium as 王志强 (dr_tianhe), and repeats: a bridge uploads a critical blood pressure for
陈美玲; the page's MutationObserver stamps the moment the alert's row is in the DOM; the doctor
dismisses it so the next round raises a new one. Both clocks are this machine's. Prints p50,
p99 and max beside the raw Redis publish-to-receive round trip of the same run. Prints, never
asserts; the browser tests check that the row appears at all.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx

from bench.baseline import redis_latency
from bench.stack import running_server
from tests.fhir import bundles

CHEN = "440106195803120021"
PASSWORD = "sgdemo2026"
OPEN_ROW = "#alert-queue tbody tr[data-status=open]"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

# Stamps, in page time (ms since the epoch), the first time each open alert row is rendered.
OBSERVER = """
() => {
  window.__seen = {};
  const tbody = document.querySelector('#alert-queue tbody');
  new MutationObserver(() => {
    for (const tr of tbody.querySelectorAll('tr[data-alert-id][data-status=open]')) {
      if (!(tr.id in window.__seen)) window.__seen[tr.id] = Date.now();
    }
  }).observe(tbody, {childList: true, subtree: true});
}
"""

DISMISS_ALL = """
async () => {
  const csrf = (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || '';
  for (const tr of document.querySelectorAll('#alert-queue tbody tr[data-alert-id]')) {
    const body = new FormData();
    body.append('note', 'benchmark round done');
    await fetch(`/alerts/${tr.dataset.alertId}/dismiss`, {
      method: 'POST', body, credentials: 'same-origin',
      headers: {'X-CSRFToken': decodeURIComponent(csrf), Accept: 'application/json'},
    });
  }
}
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(rounds: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    latencies: list[float] = []
    with (
        running_server("smartgd_bench_board", eager=False, celery=True) as (
            base,
            _env,
            token,
        ),
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_context(locale="en").new_page()
        page.goto(f"{base}/login/")
        page.fill("#id_username", "dr_tianhe")
        page.fill("#id_password", PASSWORD)
        page.click("button.primary")
        page.goto(f"{base}/hub/")
        page.wait_for_selector("#live-state.on", timeout=30000)
        page.evaluate(DISMISS_ALL)
        page.wait_for_selector("#alert-queue tbody tr[data-alert-id]", state="detached")
        page.evaluate(OBSERVER)
        with httpx.Client(
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
            timeout=30,
        ) as client:
            for i in range(rounds):
                body = bundles.upload(CHEN, 1, systolic=190 + i % 20, start_minute=i * 3 + 1)
                response = client.post(f"{base}/fhir/", content=json.dumps(body))
                accepted = time.time() * 1000
                response.raise_for_status()
                # Selectors, not wait_for_function: the page's CSP forbids eval, as it should.
                page.wait_for_selector(OPEN_ROW, timeout=30000)
                seen = page.evaluate("window.__seen")
                latencies.append(max(0.0, min(seen.values()) - accepted))
                page.evaluate(DISMISS_ALL)
                page.wait_for_selector(OPEN_ROW, state="detached")
                page.evaluate("window.__seen = {}")
                print(f"  round {i + 1}/{rounds}: {latencies[-1]:.0f} ms", flush=True)
        browser.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    redis = redis_latency(500)
    latencies = run(args.rounds)
    print(
        f"board: upload accepted → alert row visible, {len(latencies)} rounds: "
        f"p50 {statistics.median(latencies):.0f} ms, p99 {percentile(latencies, 0.99):.0f} ms, "
        f"max {max(latencies):.0f} ms"
    )
    print(
        f"baseline: raw Redis publish → receive p50 {redis['redis_pubsub_p50_ms']:.2f} ms, "
        f"p99 {redis['redis_pubsub_p99_ms']:.2f} ms (same run)"
    )


if __name__ == "__main__":
    main()
