"""Command line of the demo shop.

``python -m shop serve [--host H] [--port P]`` runs the shop page (SHOP_HOST / SHOP_PORT by default).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import List, Optional

from bot import logs
from bot.settings import load_settings


def main(argv: Optional[List[str]] = None) -> int:
    """Serve the shop page; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m shop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["serve"], help="run the demo shop page")
    parser.add_argument("--host", help="interface to listen on (SHOP_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (SHOP_PORT)")
    args = parser.parse_args(argv)
    defaults = load_settings()
    logs.configure_logging("shop", defaults.log_format, text_format=logs.CLOCK_FORMAT, datefmt="%H:%M:%S")
    settings = dataclasses.replace(defaults, shop_host=args.host or defaults.shop_host, shop_port=args.port or defaults.shop_port)
    from shop.app import create_app

    create_app(settings).run(host=settings.shop_host, port=settings.shop_port, workers=1, access_log=False, motd=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
