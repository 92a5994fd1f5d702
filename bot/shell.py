"""Chat with the running assistant in the terminal, as a demo customer, through the app channel.

``make shell`` (or ``python -m bot.shell --customer C000002``; ``--anonymous`` to chat without a
identity token). Type a button's number to press it; Ctrl-D or 再见 to leave.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any, Dict, List, Optional, Tuple

from bot.identity import identity_token_for
from bot.settings import load_settings


class Session:
    """What proves the terminal's shopper: an identity token, or the anonymous conversation's token."""

    def __init__(self, identity_token: Optional[str]) -> None:
        self.identity_token = identity_token
        self.conversation_token: Optional[str] = None

    def metadata(self) -> Dict[str, str]:
        """The webhook's ``metadata``."""
        return {"identity_token": self.identity_token} if self.identity_token else {}

    def headers(self) -> Dict[str, str]:
        """Headers of every request after the first."""
        if self.identity_token:
            return {"X-Identity-Token": self.identity_token}
        return {"X-Conversation-Token": self.conversation_token} if self.conversation_token else {}


def post_message(url: str, sender: str, text: str, session: Session) -> List[Dict[str, Any]]:
    """Send one message to the app channel; returns the bot's replies."""
    body = json.dumps({"sender": sender, "message": text, "metadata": session.metadata()}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **session.headers()})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            session.conversation_token = response.headers.get("X-Conversation-Token") or session.conversation_token
            payload = json.loads(response.read() or b"[]")
    except urllib.error.HTTPError as error:
        detail = json.loads(error.read() or b"{}")
        message = detail.get("error", {}).get("message", str(error)) if isinstance(detail, dict) else str(error)
        return [{"text": f"[{error.code}] {message}"}]
    return payload if isinstance(payload, list) else payload.get("messages", [])


def fetch_pushed(base_url: str, sender: str, session: Session, cursor: Optional[str]) -> Tuple[List[Dict[str, Any]], Optional[str]]:
    """Messages pushed to the conversation since ``cursor`` (agent replies, notices)."""
    query = f"?{urllib.parse.urlencode({'after': cursor})}" if cursor else ""
    request = urllib.request.Request(f"{base_url}/messages/{sender}{query}", headers=session.headers())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read() or b"{}")
    except (urllib.error.URLError, ValueError):
        return [], cursor
    return list(body.get("messages", [])), body.get("cursor") or cursor


def show(replies: List[Dict[str, Any]]) -> List[Dict[str, str]]:
    """Print replies; returns the buttons offered last, numbered from 1."""
    buttons: List[Dict[str, str]] = []
    for reply in replies:
        if reply.get("text"):
            print(f"助手: {reply['text']}")
        for button in reply.get("buttons") or []:
            buttons.append(button)
            print(f"   [{len(buttons)}] {button.get('title')}")
    return buttons


def main(argv: Optional[List[str]] = None) -> int:
    """Run the terminal chat."""
    parser = argparse.ArgumentParser(prog="python -m bot.shell", description=__doc__)
    parser.add_argument("--customer", default="C000001", help="demo customer id (see crm/DEMO_CUSTOMERS.md)")
    parser.add_argument("--anonymous", action="store_true", help="chat without a signed identity")
    args = parser.parse_args(argv)
    settings = load_settings()
    base_url = f"http://{settings.rasa_host}:{settings.rasa_port}/webhooks/app"
    url = f"{base_url}/webhook"
    cursor: Optional[str] = None
    session = Session(None if args.anonymous else identity_token_for(settings.shop_identity_secret, args.customer, ttl_s=12 * 3600))
    sender = f"shell-{uuid.uuid4().hex[:12]}"
    print(f"Chatting as {'an anonymous shopper' if args.anonymous else args.customer} ({sender}). Ctrl-D to leave.")
    buttons: List[Dict[str, str]] = []
    while True:
        try:
            text = input("您: ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not text:
            continue
        if text.isascii() and text.isdigit() and 1 <= int(text) <= len(buttons):
            text = buttons[int(text) - 1]["payload"]
        try:
            buttons = show(post_message(url, sender, text, session))
            pushed, cursor = fetch_pushed(base_url, sender, session, cursor)
            for message in pushed:
                who = "客服" if message.get("from") == "agent" else "通知"
                print(f"{who}: {message.get('text', '')}")
        except (urllib.error.URLError, ConnectionError) as error:
            print(f"无法连接助手（{error}）。请先在另一个终端运行 make run。", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
