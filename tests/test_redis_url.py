"""config.redis_url.with_defaults: each default on its own, the operator's value kept."""

from __future__ import annotations

from config.redis_url import with_defaults


def test_adds_every_missing_option():
    url = with_defaults("redis://127.0.0.1:6379/0", socket_timeout=30, max_connections=4000)
    assert url == "redis://127.0.0.1:6379/0?socket_timeout=30&max_connections=4000"


def test_an_option_the_operator_set_is_kept_and_the_others_still_added():
    url = with_defaults(
        "rediss://:secret@redis-a:6380/2?socket_timeout=5&ssl_cert_reqs=none",
        socket_timeout=30,
        max_connections=4000,
    )
    assert url == (
        "rediss://:secret@redis-a:6380/2?socket_timeout=5&ssl_cert_reqs=none&max_connections=4000"
    )


def test_the_channel_layer_hosts_carry_both_options(settings):
    for host in settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("hosts", []):
        assert "socket_timeout=" in host and "max_connections=" in host
