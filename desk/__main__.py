"""Command line of the agent desk.

``python -m desk serve [--host H] [--port P]`` runs the desk (DESK_HOST / DESK_PORT by default);
``python -m desk hash-password`` prints a password hash for ``desk/agents.yml``.

Settings of ``serve`` besides the addresses (``bot/settings.py``): ``DESK_TRUSTED_PROXIES``
(default: none), the reverse proxies in front of the desk whose ``X-Forwarded-For`` is honoured for
the client address that login attempts are counted by; ``DESK_WS_RECHECK_S`` (default 15), how
often an open websocket's session is checked again. Bound beyond loopback or with
``SHOP_ENV=production``, the desk refuses to start with default secrets or demo passwords
(:mod:`bot.production`).
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import sys
from typing import List, Optional

from bot import logs
from bot.settings import load_settings


def main(argv: Optional[List[str]] = None) -> int:
    """Run a desk command; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m desk", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the desk service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    hashing = commands.add_parser("hash-password", help="hash a password for the agents file")
    hashing.add_argument("--scheme", choices=["scrypt", "pbkdf2_sha256"], default="scrypt")
    args = parser.parse_args(argv)

    if args.command == "hash-password":
        from desk.auth import hash_password

        password = getpass.getpass("password: ")
        if not password or password != getpass.getpass("again: "):
            print("the passwords are empty or differ", file=sys.stderr)
            return 1
        print(hash_password(password, args.scheme))
        return 0

    settings = load_settings()
    logs.configure_logging("desk", settings.log_format, text_format=logs.CLOCK_FORMAT, datefmt="%H:%M:%S")
    changes = {}
    if args.host:
        changes["desk_host"] = args.host
    if args.port:
        changes["desk_port"] = args.port
    settings = dataclasses.replace(settings, **changes)
    from bot import production
    from desk.app import create_app
    from desk.auth import parse_networks

    production.enforce(settings, "desk", hosts=[settings.desk_host])
    try:
        proxies = parse_networks(settings.desk_trusted_proxies)
    except ValueError as error:
        print(f"DESK_TRUSTED_PROXIES is invalid: {error}", file=sys.stderr)
        return 2
    from bot import metrics

    metrics.prepare("desk", settings.var_dir, settings.desk_port)
    app = create_app(settings, trusted_proxies=proxies, ws_recheck_s=max(1.0, settings.desk_ws_recheck_s))
    app.run(host=settings.desk_host, port=settings.desk_port, workers=1, access_log=False, motd=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
