"""Where app callbacks may go: exact origins, and only addresses outside the non-global ranges unless allowed."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Dict, List

import aiohttp
import pytest

from bot.callback_targets import (
    CallbackConfigError,
    Origin,
    address_allowed,
    callback_target,
    parse_networks,
    parse_origin,
    parse_origins,
    valid_callback_url,
)
from bot.settings import load_settings
from connectors.callback_http import ForbiddenAddress, GuardedResolver, forbidden, refuse_literal_address

SHOP = parse_origins("https://shop.example.com,http://api.shop.example.com:8080,http://[::1]:9000,http://127.0.0.1:*")


@pytest.mark.parametrize("url, accepted", [
    ("https://shop.example.com/push", True),
    ("https://shop.example.com:443/push", True),  # the default port made explicit
    ("HTTPS://SHOP.EXAMPLE.COM/push", True),  # scheme and host compared in lower case
    ("https://shop.example.com:8443/push", False),  # another port
    ("http://shop.example.com/push", False),  # another scheme
    ("https://shop.example.com.evil.example/push", False),
    ("https://evil.example/?https://shop.example.com", False),
    ("https://shop.example.com./push", False),  # the trailing dot is another name
    ("http://api.shop.example.com:8080/cb", True),
    ("http://api.shop.example.com/cb", False),  # port 80 is not 8080
    ("http://[::1]:9000/cb", True),
    ("http://[0:0:0:0:0:0:0:1]:9000/cb", True),  # the same address written longer
    ("http://[::1]/cb", False),
    ("http://127.0.0.1:8080/cb", True),  # :* allows every port
    ("http://127.0.0.1/cb", True),
    ("https://127.0.0.1/cb", False),  # ... of that scheme only
    ("http://127.0.0.1:0/cb", False),
    ("http://127.0.0.1:65536/cb", False),
    ("http://127.0.0.1:-1/cb", False),
    ("http://127.0.0.1:1e3/cb", False),
    ("http://user@shop.example.com/", False),
    ("https://user:pw@shop.example.com/", False),
    ("https://@shop.example.com/", False),
    ("https://evil.example\\@shop.example.com/", False),  # parsers disagree on backslashes: refused
    ("https://shop.example.com /push", False),
    ("https://shop.example.com\n/push", False),
    ("https://shop.example.com/推送", False),
    ("https://shop.example.com/" + "x" * 600, False),
    ("ftp://shop.example.com/", False),
    ("javascript:alert(1)", False),
    ("//shop.example.com/push", False),
    ("", False),
    ("http://[::1/", False),
    ("http://127.0.0.1%2e/", False),
    ("http://\ud800/", False),
    (42, False), (None, False), (True, False), (3.5, False), ([], False), ({"url": "https://shop.example.com"}, False),
])
def test_only_urls_of_an_allowed_origin_are_accepted(url: Any, accepted: bool) -> None:
    assert valid_callback_url(url, SHOP) is accepted


@pytest.mark.parametrize("text, origin", [
    ("https://shop.example.com", Origin("https", "shop.example.com", 443)),
    ("https://shop.example.com:443", Origin("https", "shop.example.com", 443)),
    ("http://Shop.Example.com/", Origin("http", "shop.example.com", 80)),
    ("http://127.0.0.1:*", Origin("http", "127.0.0.1", None)),
    (" http://[::1]:8080 ", Origin("http", "::1", 8080)),
])
def test_origins_are_read_with_their_port_explicit(text: str, origin: Origin) -> None:
    assert parse_origin(text) == origin
    assert parse_origin(str(origin)) == origin


@pytest.mark.parametrize("text", ["shop.example.com", "ftp://shop.example.com", "https://shop.example.com/push",
                                  "https://user@shop.example.com", "https://shop.example.com:0", "https://shop.example.com:70000",
                                  "https://shop.example.com:**", "https://", "https://shop.example.com?x"])
def test_an_unusable_origin_is_an_explicit_error(text: str) -> None:
    with pytest.raises(CallbackConfigError, match="APP_CALLBACK_ORIGINS"):
        parse_origins(f"https://ok.example,{text}")


def test_the_development_default_accepts_what_the_tests_use() -> None:
    settings = load_settings({})
    origins = parse_origins(settings.app_callback_origins)
    assert all(valid_callback_url(url, origins) for url in ("http://127.0.0.1:38211/shop/push", "https://localhost/cb"))
    assert not valid_callback_url("http://shop.example.com/push", origins)
    assert [str(n) for n in parse_networks(settings.app_callback_allowed_networks)] == ["127.0.0.0/8", "::1/128"]


def test_networks_are_read_or_refused() -> None:
    assert parse_networks("none") == parse_networks("") == parse_networks(" NONE ") == ()
    assert [str(n) for n in parse_networks("10.0.0.0/8, fd00::/8,,192.168.1.7")] == ["10.0.0.0/8", "fd00::/8", "192.168.1.7/32"]
    for bad in ("10.0.0.5/8", "localhost", "10.0.0.0/33"):
        with pytest.raises(CallbackConfigError, match="APP_CALLBACK_ALLOWED_NETWORKS"):
            parse_networks(bad)


@pytest.mark.parametrize("address, allowed", [
    ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True),
    ("127.0.0.1", False), ("127.8.0.1", False), ("::1", False), ("10.1.2.3", False), ("172.16.0.1", False),
    ("192.168.0.1", False), ("169.254.169.254", False), ("fe80::1", False), ("fe80::1%eth0", False), ("fc00::1", False),
    ("224.0.0.1", False), ("ff02::1", False), ("240.0.0.1", False), ("0.0.0.0", False), ("::", False),
    ("100.64.0.1", False), ("255.255.255.255", False),
    ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False), ("::ffff:93.184.216.34", True),
    ("localhost", False), ("", False), ("010.0.0.1", False),
])
def test_only_global_addresses_pass_without_an_allowed_network(address: str, allowed: bool) -> None:
    assert address_allowed(address, ()) is allowed


def test_an_allowed_network_opens_exactly_its_addresses() -> None:
    networks = parse_networks("127.0.0.0/8,10.20.0.0/16")
    assert address_allowed("127.0.0.1", networks) and address_allowed("::ffff:127.0.0.1", networks)
    assert address_allowed("10.20.3.4", networks) and not address_allowed("10.21.0.1", networks)
    assert not address_allowed("::1", networks) and not address_allowed("169.254.169.254", networks)


class _Answers(aiohttp.abc.AbstractResolver):
    """A resolver answering fixed addresses, as a DNS server under an attacker's control would."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> List[Dict[str, Any]]:
        return [{"hostname": host, "host": address, "port": port, "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                 "proto": 0, "flags": 0} for address in self.addresses]

    async def close(self) -> None:
        return None


def test_the_resolver_drops_forbidden_addresses_and_refuses_when_none_is_left() -> None:
    async def scenario() -> None:
        mixed = GuardedResolver((), _Answers("127.0.0.1", "93.184.216.34", "::ffff:10.0.0.1", "169.254.169.254"))
        assert [info["host"] for info in await mixed.resolve("shop.example.com", 443)] == ["93.184.216.34"]
        rebound = GuardedResolver((), _Answers("127.0.0.1", "::1"))
        with pytest.raises(ForbiddenAddress):
            await rebound.resolve("shop.example.com", 443)
        allowed = GuardedResolver(parse_networks("127.0.0.0/8"), _Answers("::1", "127.0.0.1"))
        assert [info["host"] for info in await allowed.resolve("localhost", 80)] == ["127.0.0.1"]

    asyncio.run(scenario())


def test_literal_addresses_are_checked_before_connecting() -> None:
    for url in ("http://127.0.0.1:8080/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/", "http://010.0.0.1/"):
        with pytest.raises(ForbiddenAddress):
            refuse_literal_address(url, ())
    refuse_literal_address("http://93.184.216.34/", ())
    refuse_literal_address("http://localhost/", ())  # a name: the resolver judges it
    refuse_literal_address("http://127.0.0.1:8080/", parse_networks("127.0.0.0/8"))


def test_a_refused_address_is_recognised_inside_aiohttps_errors() -> None:
    wrapped = aiohttp.ClientConnectorError(aiohttp.client_reqrep.ConnectionKey("h", 80, False, True, None, None, None),
                                           ForbiddenAddress("no"))
    assert forbidden(wrapped) and forbidden(ForbiddenAddress("no"))
    assert not forbidden(aiohttp.ClientConnectorError(wrapped._conn_key, ConnectionRefusedError(111, "refused")))
    assert callback_target("http://LOCALHOST:80/x") == callback_target("http://localhost/y")
