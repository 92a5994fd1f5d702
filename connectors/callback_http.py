"""The HTTP client of the app channel's callbacks: it connects only to addresses callbacks may reach.

The allowed origins (:mod:`bot.callback_targets`) say which URLs a conversation may register; this
module makes sure the connection itself goes nowhere else, without a DNS-rebinding gap:

- host names are resolved by :class:`GuardedResolver` (aiohttp's threaded resolver underneath),
  which drops every address outside :func:`bot.callback_targets.address_allowed`; the connector
  connects to what it returned and nothing else, so a name that resolves to a public address when
  the URL was registered and to ``127.0.0.1`` at delivery time is refused at delivery time;
- aiohttp never asks the resolver about a literal IP address (``TCPConnector._resolve_host`` returns
  it as is), so :func:`refuse_literal_address` checks a URL's literal host before the request;
- redirects are never followed (the caller passes ``allow_redirects=False``).
"""

from __future__ import annotations

import socket
from typing import Any, Dict, List, Optional, Sequence

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.helpers import is_ip_address
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from bot.callback_targets import IPNetwork, address_allowed


class ForbiddenAddress(OSError):
    """A callback would connect to an address that is not allowed (see :mod:`bot.callback_targets`)."""


class GuardedResolver(AbstractResolver):
    """A resolver returning only the addresses a callback may connect to.

    Args:
        networks: the allowed non-global networks (``APP_CALLBACK_ALLOWED_NETWORKS``).
        resolver: the resolver asked first (aiohttp's :class:`~aiohttp.resolver.ThreadedResolver`
            when omitted; create this object inside the running event loop then).
    """

    def __init__(self, networks: Sequence[IPNetwork], resolver: Optional[AbstractResolver] = None) -> None:
        self.networks = tuple(networks)
        self.resolver = resolver or ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> List[Dict[str, Any]]:
        """Resolve ``host`` and keep the allowed addresses.

        Raises:
            ForbiddenAddress: every address the name resolved to is forbidden.
            OSError: the name could not be resolved.
        """
        found = await self.resolver.resolve(host, port, family)
        allowed = [info for info in found if address_allowed(str(info.get("host", "")), self.networks)]
        if not allowed:
            raise ForbiddenAddress(f"{host} resolves to no address a callback may reach")
        return allowed

    async def close(self) -> None:
        """Release the underlying resolver."""
        await self.resolver.close()


def refuse_literal_address(url: str, networks: Sequence[IPNetwork]) -> None:
    """Refuse a URL whose host is a literal IP address a callback may not reach.

    The host is read as aiohttp reads it (yarl), and judged a literal as aiohttp judges it, so a host
    aiohttp connects to without resolving is always checked here. Host names pass (the resolver
    checks them).

    Raises:
        ForbiddenAddress: the literal address is not allowed (or not an address Python can read).
    """
    host = URL(url).raw_host or ""
    if is_ip_address(host) and not address_allowed(host, networks):
        raise ForbiddenAddress(f"{host} is not an address a callback may reach")


def callback_session(networks: Sequence[IPNetwork]) -> aiohttp.ClientSession:
    """A client session whose connections reach only allowed addresses (call inside the event loop).

    Args:
        networks: the allowed non-global networks.
    """
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(networks))
    return aiohttp.ClientSession(connector=connector, trust_env=False)


def forbidden(error: BaseException) -> bool:
    """Whether a client error was a refused address (wrapped by aiohttp in a connector error)."""
    seen: Optional[BaseException] = error
    for _ in range(4):  # the error, what aiohttp wrapped, and their causes; never a cycle
        if seen is None or isinstance(seen, ForbiddenAddress):
            return seen is not None
        seen = seen.os_error if isinstance(seen, aiohttp.ClientConnectorError) else seen.__cause__
    return False
