"""A tiny stand-in for the server's ``POST /fhir/`` and ``/api/bridge/status`` (tests, bench, demo).

Why: the uploader's contract (transaction-response entries in request order, conditional
creates deduped by identifier, 401/403/422/429/5xx) must be exercised over real HTTP before the
Django endpoint exists, and the bench needs a server that is never the bottleneck. Runs on its
own thread and event loop (``asyncio.start_server``), on 127.0.0.1 and an ephemeral port.

Not the server: it validates nothing but the token, the patients it was told about and an
optional ``reject`` predicate; it never imports Django.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Reject = Callable[[dict[str, Any]], str | None]


@dataclass
class FakeServerState:
    """What the fake server stored and saw; mutate the knobs between requests."""

    token: str = "test-token"
    patients: set[str] | None = None  # None: any patient allowed
    reject: Reject | None = None  # Observation → reason (→ 422) or None
    down: bool = False  # close connections without answering
    status_codes: list[int] = field(default_factory=list)  # forced answers, consumed in order
    retry_after: str | None = None
    status_endpoint: bool = True
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)  # identifier → Observation
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    bundles: int = 0
    statuses: list[dict[str, Any]] = field(default_factory=list)


class FakeFhirServer:
    """Start with :meth:`start` (returns the base URL), stop with :meth:`stop`."""

    def __init__(self, state: FakeServerState | None = None) -> None:
        self.state = state or FakeServerState()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._server.close()
            self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-fhir", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self.url

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeFhirServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- HTTP --------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if self.state.down:
                    writer.close()
                    return
                status, payload, extra = self._respond(method, path, headers, body)
                data = json.dumps(payload).encode()
                reason = {
                    200: "OK",
                    201: "Created",
                    401: "Unauthorized",
                    403: "Forbidden",
                    404: "Not Found",
                }.get(status, "Status")
                hdrs = [
                    f"HTTP/1.1 {status} {reason}",
                    "Content-Type: application/fhir+json",
                    f"Content-Length: {len(data)}",
                ]
                hdrs += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(hdrs) + "\r\n\r\n").encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    def _respond(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        s = self.state
        with self._lock:
            s.requests += 1
            if headers.get("authorization") != f"Bearer {s.token}":
                return 401, _outcome("security", "bridge token not recognised"), {}
            if path.rstrip("/") == "/api/bridge/status" and method == "POST":
                if not s.status_endpoint:
                    return 404, {"detail": "not found"}, {}
                s.statuses.append(json.loads(body or b"{}"))
                return 200, {"ok": True}, {}
            if path != "/fhir/" or method != "POST":
                return 404, _outcome("not-found", f"no route {method} {path}"), {}
            if s.status_codes:
                code = s.status_codes.pop(0)
                extra = {"Retry-After": s.retry_after} if code == 429 and s.retry_after else {}
                return code, _outcome("transient", f"forced {code}"), extra
            return self._transaction(json.loads(body))

    def _transaction(self, bundle: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        s = self.state
        entries = bundle.get("entry", [])
        # All-or-nothing, as a FHIR transaction: check everything before storing anything.
        for i, e in enumerate(entries):
            res = e["resource"]
            if res["resourceType"] != "Observation":
                continue
            patient = res["subject"]["identifier"]["value"]
            if s.patients is not None and patient not in s.patients:
                return (
                    403,
                    _outcome(
                        "forbidden",
                        f"patient {patient} is not in this bridge's household",
                        f"Bundle.entry[{i}]",
                    ),
                    {},
                )
            reason = s.reject(res) if s.reject else None
            if reason:
                return 422, _outcome("invalid", reason, f"Bundle.entry[{i}]"), {}
        out = []
        for e in entries:
            res = e["resource"]
            ident = e["request"]["ifNoneExist"].split("=", 1)[1]
            table = s.stored if res["resourceType"] == "Observation" else s.devices
            if ident in table:
                out.append({"response": {"status": "200 OK"}})
            else:
                table[ident] = res
                out.append(
                    {
                        "response": {
                            "status": "201 Created",
                            "location": f"{res['resourceType']}/{len(table)}",
                        }
                    }
                )
        s.bundles += 1
        return 200, {"resourceType": "Bundle", "type": "transaction-response", "entry": out}, {}


def _outcome(code: str, text: str, expression: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": text}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}
