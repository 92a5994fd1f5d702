"""Command line of the simulated WeChat server.

``python -m wechat_sim serve [--host H] [--port P] [--webhook URL] ...`` runs it (WECHAT_SIM_HOST /
WECHAT_SIM_PORT by default, the server URL of the Rasa server's ``wechat`` channel, the account's
token, app id, secret and EncodingAESKey from the settings). Open ``http://HOST:PORT/`` to chat as a
WeChat user.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from bot import logs
from bot.settings import load_settings


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def main(argv: Optional[List[str]] = None) -> int:
    """Run a simulator command; returns the exit code."""
    settings = load_settings()
    parser = argparse.ArgumentParser(prog="python -m wechat_sim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the simulated WeChat server")
    serve.add_argument("--host", default=settings.wechat_sim_host)
    serve.add_argument("--port", type=int, default=settings.wechat_sim_port)
    serve.add_argument("--webhook", default=f"http://{_local(settings.rasa_host)}:{settings.rasa_port}/webhooks/wechat/webhook",
                       help="the official account's server URL")
    serve.add_argument("--token", default=settings.wechat_token)
    serve.add_argument("--appid", default=settings.wechat_appid)
    serve.add_argument("--appsecret", default=settings.wechat_appsecret)
    serve.add_argument("--encoding-aes-key", default=settings.wechat_encoding_aes_key,
                       help="the account's EncodingAESKey: safe mode (encrypted messages); empty: plaintext mode")
    serve.add_argument("--timeout", type=float, default=5.0, help="seconds WeChat waits for the server's answer")
    serve.add_argument("--retries", type=int, default=3, help="further attempts after a timeout")
    serve.add_argument("--token-ttl", type=int, default=7200, help="expires_in of access tokens, seconds")
    args = parser.parse_args(argv)

    logs.configure_logging("wechat-sim", settings.log_format, text_format=logs.CLOCK_FORMAT, datefmt="%H:%M:%S")
    from wechat_sim.app import SimConfig, create_app

    config = SimConfig(webhook_url=args.webhook, token=args.token, appid=args.appid, appsecret=args.appsecret,
                       timeout_s=args.timeout, retries=args.retries, token_ttl_s=args.token_ttl,
                       shop_secret=settings.shop_identity_secret, encoding_aes_key=args.encoding_aes_key)
    app = create_app(config)
    app.run(host=args.host, port=args.port, workers=1, access_log=False, motd=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
