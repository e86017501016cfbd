"""The uploader: outbox batches → PHD-IG transaction Bundles → ``POST {server}/fhir/``.

Why: readings must reach the server exactly once even across outages, restarts and refusals.
The contract with the server:

- the answer to a transaction is a ``transaction-response`` Bundle whose entries are in request
  order; a reading is acknowledged (deleted from the outbox) only when *every* entry built
  from it has a 2xx status ("201" created, "200" already stored);
- connection errors, 5xx and 429 are retried with exponential backoff and full jitter,
  honouring ``Retry-After``; nothing is dropped;
- 401: the bridge token is refused — :class:`TokenRefused` stops the bridge (no retry loop can
  fix a revoked token);
- 403 (patient outside the household), 400/422 (invalid): the batch is bisected until the
  refused readings are isolated; each is quarantined with the server's OperationOutcome text,
  the rest is uploaded;
- after each cycle the bridge's status goes to ``POST {server}/api/bridge/status`` (a 404 there
  means an older server, ignored).

Everything I/O-bound is injected (``httpx.AsyncClient``, ``sleep``, ``rng``), so tests drive it
with ``httpx.MockTransport`` or a real local server, and an end-to-end test can run it in-process
against any URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from devices.bridge.logs import event, get_logger
from devices.bridge.outbox import Outbox, Row
from devices.bridge.phd import Gateway, build_bundle
from devices.bridge.reading import Reading, reading_from_json

log = get_logger("uploader")

FHIR_JSON = "application/fhir+json"
REFUSED_STATUSES = frozenset({400, 403, 404, 409, 412, 413, 422})


class UploadError(Exception):
    """Base of the uploader's errors."""


class TokenRefused(UploadError):
    """The server answered 401: the bridge token is wrong or revoked. Fatal."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "bridge token refused by the server (401): ask the clinic admin for a new token "
            "and set it with `sg-bridge pair`/the config's `token`"
            + (f" — {detail}" if detail else "")
        )


class RetryLater(UploadError):
    """A transient failure (server down, 5xx, 429): try again after a backoff."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class CycleResult:
    """What one upload cycle did."""

    sent: int = 0
    stored: int = 0
    quarantined: int = 0
    left_pending: int = 0
    requests: int = 0
    quarantine_reasons: list[str] = field(default_factory=list)


@dataclass
class UploaderState:
    """What ``status`` reports about uploads (also persisted in the outbox's meta table)."""

    last_upload_at: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0


class Uploader:
    """Uploads the outbox to one server; create one per bridge process."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        server_url: str,
        token: str,
        gateway: Gateway,
        client: httpx.AsyncClient | None = None,
        batch_size: int = 100,
        max_age_s: float = 2.0,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 300.0,
        request_timeout_s: float = 30.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        monitors: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.outbox = outbox
        self.server_url = server_url.rstrip("/")
        self.token = token
        self.gateway = gateway
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(timeout=request_timeout_s)
        self.batch_size = batch_size
        self.max_age_s = max_age_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.monitors = monitors or (lambda: [])
        self.state = UploaderState(
            last_upload_at=outbox.get_meta("last_upload_at"),
            last_error=outbox.get_meta("last_error"),
        )
        self.wake = asyncio.Event()
        self.total_stored = 0

    @property
    def fhir_url(self) -> str:
        return f"{self.server_url}/fhir/"

    @property
    def status_url(self) -> str:
        return f"{self.server_url}/api/bridge/status"

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    # --- one cycle ----------------------------------------------------------------------

    async def cycle(self, *, force: bool = False) -> CycleResult | None:
        """Upload one batch if one is due (or any pending rows with ``force``).

        Returns ``None`` when nothing was due. Raises :class:`RetryLater` or
        :class:`TokenRefused`; quarantines refused readings itself.
        """
        rows = self.outbox.batch(self.batch_size, None if force else self.max_age_s)
        if not rows:
            return None
        result = CycleResult(sent=len(rows))
        try:
            await self._upload(rows, result)
        except RetryLater as exc:
            self._record_error(str(exc))
            raise
        except TokenRefused as exc:
            self._record_error(str(exc))
            raise
        self.state.consecutive_failures = 0
        self.state.last_error = None
        self.state.last_upload_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.outbox.set_meta("last_upload_at", self.state.last_upload_at)
        self.outbox.set_meta("last_error", None)
        self.total_stored += result.stored
        event(
            log, logging.INFO, "upload.ok",
            sent=result.sent, stored=result.stored, quarantined=result.quarantined,
            requests=result.requests, depth=self.outbox.depth(),
        )  # fmt: skip
        return result

    async def _upload(self, rows: Sequence[Row], result: CycleResult) -> None:
        readings: list[Reading] = []
        good_rows: list[Row] = []
        for row in rows:
            try:
                reading = reading_from_json(row.payload)
            except (ValueError, KeyError, TypeError) as exc:
                self._quarantine(row, f"unreadable outbox payload: {exc}", result)
                continue
            if not reading.patient_id:
                self._quarantine(row, "no patient mapped for this monitor/user id", result)
                continue
            readings.append(reading)
            good_rows.append(row)
        if not good_rows:
            return
        built = build_bundle(readings, self.gateway)
        # A reading with no entry (a kind that is not uploaded) is done already.
        carried = {k for k in built.entry_keys if k is not None}
        empty = [row for row in good_rows if row.key not in carried]
        if empty:
            self.outbox.ack([row.id for row in empty])
        if not carried:
            return
        response = await self._post(built.bundle)
        result.requests += 1
        status = response.status_code
        if 200 <= status < 300:
            self._apply_transaction_response(good_rows, built.entry_keys, response, result)
            return
        if status == 401:
            raise TokenRefused(_outcome_text(response))
        if status in (429, 408) or status >= 500:
            raise RetryLater(
                f"server answered {status}: {_outcome_text(response)}", _retry_after(response)
            )
        if status == 404 and len(good_rows) > 1 and not _is_outcome(response):
            raise RetryLater(
                f"no FHIR endpoint at {self.fhir_url} (404): check server_url in the config"
            )
        if status in REFUSED_STATUSES or 400 <= status < 500:
            if len(good_rows) == 1:
                self._quarantine(good_rows[0], f"{status}: {_outcome_text(response)}", result)
                return
            mid = len(good_rows) // 2
            await self._upload(good_rows[:mid], result)
            await self._upload(good_rows[mid:], result)
            return
        raise RetryLater(f"unexpected answer {status}")

    def _apply_transaction_response(
        self,
        rows: Sequence[Row],
        entry_keys: list[str | None],
        response: httpx.Response,
        result: CycleResult,
    ) -> None:
        try:
            body = response.json()
            entries = body.get("entry") or []
        except ValueError as exc:
            raise RetryLater(
                f"server answered {response.status_code} without a JSON Bundle"
            ) from exc
        if body.get("resourceType") != "Bundle" or len(entries) != len(entry_keys):
            raise RetryLater(
                f"transaction-response has {len(entries)} entries for {len(entry_keys)} sent; keeping the batch"
            )
        verdict: dict[str, tuple[str, str]] = {}  # key → ("ok" | "refused" | "retry", reason)
        for key, entry in zip(entry_keys, entries, strict=True):
            if key is None:
                continue
            resp = entry.get("response") or {}
            code = _status_code(str(resp.get("status", "")))
            prev = verdict.get(key, ("ok", ""))
            if 200 <= code < 300:
                verdict.setdefault(key, ("ok", ""))
            elif code in REFUSED_STATUSES or 400 <= code < 500:
                reason = f"{code}: {_outcome_text_dict(resp.get('outcome'))}"
                if prev[0] != "refused":
                    verdict[key] = ("refused", reason)
            elif prev[0] == "ok":
                verdict[key] = ("retry", str(code))
        ack_ids = []
        for row in rows:
            v = verdict.get(row.key)
            if v is None:
                continue
            if v[0] == "ok":
                ack_ids.append(row.id)
            elif v[0] == "refused":
                self._quarantine(row, v[1], result)
            else:
                result.left_pending += 1
        result.stored += self.outbox.ack(ack_ids)

    def _quarantine(self, row: Row, reason: str, result: CycleResult) -> None:
        self.outbox.quarantine(row.id, reason)
        result.quarantined += 1
        result.quarantine_reasons.append(reason)
        event(log, logging.WARNING, "upload.quarantined", key=row.key, reason=reason)

    async def _post(self, bundle: dict[str, Any]) -> httpx.Response:
        try:
            return await self.client.post(
                self.fhir_url,
                json=bundle,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": FHIR_JSON,
                    "Accept": FHIR_JSON,
                },
            )
        except httpx.TimeoutException as exc:
            raise RetryLater(f"server {self.server_url} timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise RetryLater(
                f"server {self.server_url} unreachable: {exc or type(exc).__name__}"
            ) from exc

    def _record_error(self, message: str) -> None:
        self.state.last_error = message
        self.state.consecutive_failures += 1
        self.outbox.set_meta("last_error", message)
        event(log, logging.WARNING, "upload.failed", error=message, depth=self.outbox.depth())

    # --- status -------------------------------------------------------------------------

    def status_document(self) -> dict[str, Any]:
        age = self.outbox.oldest_age()
        return {
            "gateway": self.gateway.eui64,
            "outbox_depth": self.outbox.depth(),
            "oldest_pending_age_s": None if age is None else round(age, 1),
            "quarantined": self.outbox.quarantined_count(),
            "last_upload_at": self.state.last_upload_at,
            "last_error": self.state.last_error,
            "monitors": self.monitors(),
        }

    async def post_status(self) -> bool:
        """Send the status document; never raises (a 404 means an older server)."""
        try:
            r = await self.client.post(
                self.status_url,
                json=self.status_document(),
                headers={"Authorization": f"Bearer {self.token}"},
            )
        except httpx.HTTPError as exc:
            event(log, logging.DEBUG, "status.unsent", error=str(exc) or type(exc).__name__)
            return False
        if r.status_code == 404:
            return False
        if r.status_code >= 400:
            event(log, logging.DEBUG, "status.refused", status=r.status_code)
            return False
        return True

    # --- loops --------------------------------------------------------------------------

    def backoff_delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Full jitter: uniform(0, min(cap, base·2^attempt)), never less than Retry-After."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * (2 ** min(attempt, 30)))
        delay = self.rng.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_cap_s * 4))
        return delay

    async def run(self, stop: asyncio.Event, *, poll_s: float = 0.5) -> None:
        """Upload until ``stop`` is set; raises :class:`TokenRefused` (fatal)."""
        attempt = 0
        while not stop.is_set():
            try:
                result = await self.cycle()
            except RetryLater as exc:
                await self.post_status()
                delay = self.backoff_delay(attempt, exc.retry_after)
                attempt += 1
                await _wait(stop, delay, self.sleep)
                continue
            attempt = 0
            if result is not None:
                await self.post_status()
                continue
            self.wake.clear()
            await _wait_any(stop, self.wake, poll_s)

    async def drain(self, *, timeout_s: float = 60.0) -> int:
        """Upload everything pending (ignoring the age limit), retrying; returns readings stored."""
        deadline = time.monotonic() + timeout_s
        attempt = 0
        before = self.total_stored
        while self.outbox.depth() and time.monotonic() < deadline:
            try:
                await self.cycle(force=True)
                attempt = 0
            except RetryLater as exc:
                delay = min(
                    self.backoff_delay(attempt, exc.retry_after),
                    max(0.0, deadline - time.monotonic()),
                )
                attempt += 1
                await self.sleep(delay)
        await self.post_status()
        return self.total_stored - before


async def _wait(
    stop: asyncio.Event, delay: float, sleep: Callable[[float], Awaitable[Any]]
) -> None:
    if sleep is not asyncio.sleep:
        await sleep(delay)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=delay)


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


def _status_code(text: str) -> int:
    head = text.strip().split(" ", 1)[0]
    return int(head) if head.isdigit() else 0


def _retry_after(r: httpx.Response) -> float | None:
    value = r.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _is_outcome(r: httpx.Response) -> bool:
    try:
        return r.json().get("resourceType") == "OperationOutcome"
    except ValueError:
        return False


def _outcome_text(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return (r.text or r.reason_phrase or "").strip()[:500]
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return _outcome_text_dict(body)
    return str(body)[:500]


def _outcome_text_dict(outcome: Any) -> str:
    if not isinstance(outcome, dict):
        return "refused"
    texts = []
    for issue in outcome.get("issue") or []:
        t = (
            issue.get("diagnostics")
            or (issue.get("details") or {}).get("text")
            or issue.get("code")
        )
        if t:
            texts.append(str(t))
    return "; ".join(texts) or "refused"
