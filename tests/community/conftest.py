"""Channel layers for the socket tests: the in-memory one and both channels_redis layers."""

from __future__ import annotations

import os
import uuid

import pytest

MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


# redis-py 8 reads with a 5 s socket timeout by default, the same as channels_redis' blocking
# BZPOPMIN, so an idle consumer can die with TimeoutError (django/channels_redis#422). A read
# timeout above the pop's keeps it alive; config.settings applies the same to CHANNEL_REDIS_HOSTS.
READ_TIMEOUT = "socket_timeout=30"


def redis_layers(kind: str = "core") -> dict:
    """channels_redis on REDIS_URL: the core layer, or the pub/sub one (SG_CHANNEL_LAYER)."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return {
        "default": {
            "BACKEND": f"channels_redis.{kind}.{'RedisPubSubChannelLayer' if kind == 'pubsub' else 'RedisChannelLayer'}",
            "CONFIG": {
                "hosts": [f"{url}{'&' if '?' in url else '?'}{READ_TIMEOUT}"],
                # a prefix per test: parallel runs and leftovers never cross
                "prefix": f"test-{uuid.uuid4().hex[:10]}",
            },
        }
    }


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.services),
        pytest.param("redis-pubsub", marks=pytest.mark.services),
    ]
)
def layer(request, settings) -> str:
    """Run a socket test once on each channel layer the product supports."""
    settings.CHANNEL_LAYERS = {
        "memory": MEMORY,
        "redis": redis_layers("core"),
        "redis-pubsub": redis_layers("pubsub"),
    }[request.param]
    return request.param


@pytest.fixture
def memory_layer(settings) -> None:
    settings.CHANNEL_LAYERS = MEMORY


@pytest.fixture
async def close_db_connections():
    """Close the connection of the thread database_sync_to_async used, so the test database can
    be dropped at the end of the run (asgiref runs those calls in one shared thread)."""
    yield
    from channels.db import database_sync_to_async
    from django.db import connections

    await database_sync_to_async(connections.close_all)()
