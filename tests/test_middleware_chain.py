"""Under ASGI the middleware chain and the view run in one thread hand-off (config/asgi_handler.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from asgiref import sync


@pytest.mark.django_db(transaction=True)
def test_a_request_through_the_asgi_handler_keeps_its_headers_and_few_hand_offs(monkeypatch):
    """The middleware still does its work (security headers, CSP, CSRF cookie), and the request
    crosses from the event loop to a thread a few times, not once per middleware hook."""
    from config.asgi import application

    hand_offs = 0
    real_call = sync.SyncToAsync.__call__

    async def counting_call(self, *args, **kwargs):
        nonlocal hand_offs
        hand_offs += 1
        return await real_call(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counting_call)

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.get("/login/")

    response = asyncio.run(get())
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response.headers
    assert "csrftoken" in response.cookies
    # Measured: 3 with the chain built in sync mode (request_started, the chain, its end), 20 with
    # Django's own ASGIHandler.
    assert hand_offs <= 3, hand_offs
