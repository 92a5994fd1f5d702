"""The Redis of a store in ``endpoints.yml``: Rasa's store options (host, port, db, ...) as one URL.

``endpoints.yml`` gives the tracker and lock stores Rasa's options, filled from the environment
(``${REDIS_HOST}`` ...), so every value may arrive as a string and an unset variable as ``""``.
:func:`redis_url` turns them into the ``redis://`` (or ``rediss://``) URL the project's asyncio
clients are made from (:func:`handoff.context.redis_client`).
"""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import quote


def flag(value: Any) -> bool:
    """A boolean option as YAML or an environment variable gives it (``""``, ``"false"``: false)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def optional(value: Any) -> Optional[Any]:
    """None for an option left empty (``${VAR}`` of an empty variable)."""
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def redis_url(host: str, port: Any, db: Any, username: Any = None, password: Any = None, use_ssl: Any = False,
              ssl_ca_certs: Any = None) -> str:
    """The URL of a store's Redis from Rasa's store options (strings or typed values).

    Args:
        host: host name or address (an IPv6 address is bracketed).
        port: TCP port.
        db: database number.
        username: ACL user, none or empty for the default user.
        password: password, none or empty for none.
        use_ssl: TLS (``rediss://``).
        ssl_ca_certs: CA file that signs the server's certificate (with TLS only).
    """
    user, secret, ca_file = optional(username), optional(password), optional(ssl_ca_certs)
    tls = flag(use_ssl)
    credentials = f"{quote(user or '', safe='')}:{quote(secret or '', safe='')}@" if user or secret else ""
    query = f"?ssl_ca_certs={quote(ca_file, safe='')}" if tls and ca_file else ""
    address = f"[{host}]" if ":" in host else host
    return f"{'rediss' if tls else 'redis'}://{credentials}{address}:{int(port)}/{int(db)}{query}"
