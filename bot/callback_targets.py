"""Where the app channel may POST pushed messages: the callback origins and the addresses behind them.

Two settings decide it, both read once at channel start and checked again at every delivery:

- ``APP_CALLBACK_ORIGINS``: the exact origins (``scheme://host:port``, comma-separated) a
  conversation's ``callback_url`` may point at. A URL is accepted only when its scheme, lowercased
  host and port (the scheme's default port made explicit: ``https://shop.example.com`` is
  ``https://shop.example.com:443``) equal those of one origin. ``:*`` in place of the port allows
  every port of that scheme and host; it exists for the development stack, whose tests start
  callback receivers on random ports, and the production guard refuses it.
- ``APP_CALLBACK_ALLOWED_NETWORKS``: the networks (CIDR, comma-separated, ``none`` for none) a
  callback may connect to although their addresses are not globally routable. Every other address
  that is loopback, private, link-local, multicast, reserved, unspecified or otherwise not global
  (IPv4-mapped IPv6 addresses are judged by the IPv4 address they carry) is refused, whatever the
  host name resolved to.

The functions here are pure; :mod:`connectors.callback_http` applies them to the connections.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

from yarl import URL

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

MAX_CALLBACK_URL_CHARS = 512
"""Longest callback URL accepted."""

DEFAULT_PORTS = {"http": 80, "https": 443}
"""The schemes a callback may use, with the port a URL without one means."""

ANY_PORT = "*"
"""Written as an origin's port (``http://127.0.0.1:*``): every port of that scheme and host."""

NO_NETWORKS = "none"
"""The value of ``APP_CALLBACK_ALLOWED_NETWORKS`` that allows no non-global network at all."""

_ORIGIN = re.compile(r"(?P<scheme>[A-Za-z]+)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>\*|[0-9]{1,5}))?/?")
_URL_CHARACTERS = re.compile(r"[!-\[\]-~]+")
"""Printable ASCII without space or backslash: nothing two URL parsers could read differently."""


class CallbackConfigError(ValueError):
    """``APP_CALLBACK_ORIGINS`` or ``APP_CALLBACK_ALLOWED_NETWORKS`` holds an entry that cannot be used."""


@dataclass(frozen=True)
class Origin:
    """One allowed callback origin.

    Attributes:
        scheme: ``http`` or ``https``.
        host: the host, lowercased; an IP address in its canonical form, without brackets.
        port: the port (the scheme's default when the origin named none); None for ``:*``.
    """

    scheme: str
    host: str
    port: Optional[int]

    @property
    def any_port(self) -> bool:
        """Whether the origin was written with ``:*``."""
        return self.port is None

    def matches(self, target: Target) -> bool:
        """Whether a URL's (scheme, host, port) is this origin's."""
        return (target.scheme, target.host) == (self.scheme, self.host) and (self.port is None or target.port == self.port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{ANY_PORT if self.port is None else self.port}"


@dataclass(frozen=True)
class Target:
    """What a callback URL points at: scheme, normalised host and explicit port."""

    scheme: str
    host: str
    port: int


def _normal_host(host: str) -> str:
    """A host as compared: an IP address in canonical form, a name lowercased."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare.lower()


def parse_origin(text: str) -> Origin:
    """Read one entry of ``APP_CALLBACK_ORIGINS``.

    Args:
        text: ``scheme://host``, ``scheme://host:port`` or ``scheme://host:*``.

    Returns:
        The origin, its default port made explicit.

    Raises:
        CallbackConfigError: not such an origin (another scheme, a path, credentials, a bad port).
    """
    match = _ORIGIN.fullmatch(text.strip())
    scheme = match.group("scheme").lower() if match else ""
    if match is None or scheme not in DEFAULT_PORTS:
        raise CallbackConfigError(f"APP_CALLBACK_ORIGINS: {text!r} is not an origin like https://shop.example.com:443")
    raw_port = match.group("port")
    if raw_port == ANY_PORT:
        return Origin(scheme, _normal_host(match.group("host")), None)
    port = int(raw_port) if raw_port else DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise CallbackConfigError(f"APP_CALLBACK_ORIGINS: {text!r} has a port outside 1-65535")
    return Origin(scheme, _normal_host(match.group("host")), port)


def parse_origins(text: str) -> Tuple[Origin, ...]:
    """Read ``APP_CALLBACK_ORIGINS`` (comma-separated origins; empty entries ignored).

    Raises:
        CallbackConfigError: an entry is not an origin.
    """
    return tuple(parse_origin(item) for item in text.split(",") if item.strip())


def callback_target(url: Any) -> Optional[Target]:
    """What a callback URL points at, or None when it is not a URL the channel would ever call.

    Refused: anything but a string; empty, longer than :data:`MAX_CALLBACK_URL_CHARS`, non-ASCII,
    with spaces, controls or backslashes; another scheme than http(s); credentials (any ``@`` before
    the path); a port outside 1-65535; a URL that Python's parser and aiohttp's (yarl) read as two
    different places.

    Args:
        url: the ``callback_url`` a request gave (any JSON value).
    """
    if not isinstance(url, str) or not 0 < len(url) <= MAX_CALLBACK_URL_CHARS or _URL_CHARACTERS.fullmatch(url) is None:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
        seen_by_aiohttp = URL(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or "@" in parts.netloc or not parts.hostname:
        return None
    port = DEFAULT_PORTS[scheme] if port is None else port
    if not 0 < port < 65536:
        return None
    target = Target(scheme, _normal_host(parts.hostname), port)
    if (seen_by_aiohttp.scheme, _normal_host(seen_by_aiohttp.raw_host or ""), seen_by_aiohttp.port) != (scheme, target.host, port):
        return None
    return target


def valid_callback_url(url: Any, origins: Sequence[Origin]) -> bool:
    """Whether a conversation's callback URL may be used: a sound http(s) URL of an allowed origin.

    Args:
        url: the URL the request gave (any JSON value).
        origins: the allowed origins (:func:`parse_origins` of ``APP_CALLBACK_ORIGINS``).
    """
    target = callback_target(url)
    return target is not None and any(origin.matches(target) for origin in origins)


def parse_networks(text: str) -> Tuple[IPNetwork, ...]:
    """Read ``APP_CALLBACK_ALLOWED_NETWORKS``: comma-separated CIDR networks, or ``none``.

    Raises:
        CallbackConfigError: an entry is not a network (or has host bits set, e.g. ``10.0.0.5/8``).
    """
    if text.strip().lower() == NO_NETWORKS:
        return ()
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError as error:
            raise CallbackConfigError(f"APP_CALLBACK_ALLOWED_NETWORKS: {item!r} is not a network like 10.0.0.0/8 ({error})") from error
    return tuple(networks)


def _carried(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped IPv6 address carries (``::ffff:127.0.0.1``), else the address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def non_global(address: IPAddress) -> bool:
    """Whether an address is one a callback must not reach unless its network is allowed.

    Loopback, private, link-local, multicast, reserved, unspecified and every other address that is
    not globally routable (e.g. shared ``100.64.0.0/10``); an IPv4-mapped IPv6 address is judged by
    the IPv4 address it carries.
    """
    judged = _carried(address)
    return (judged.is_loopback or judged.is_private or judged.is_link_local or judged.is_multicast or judged.is_reserved
            or judged.is_unspecified or not judged.is_global)


def address_allowed(address: str, networks: Iterable[IPNetwork]) -> bool:
    """Whether a callback may connect to an address.

    Args:
        address: a numeric IPv4 or IPv6 address (an IPv6 zone, ``%eth0``, is ignored).
        networks: the allowed non-global networks (:func:`parse_networks`).

    Returns:
        True for a global address or one inside an allowed network (an IPv4-mapped address is also
        looked up as the IPv4 address it carries); False for every other address and for text
        that is not an address.
    """
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    carried = _carried(parsed)
    if any(parsed in network or carried in network for network in networks):
        return True
    return not non_global(parsed)
