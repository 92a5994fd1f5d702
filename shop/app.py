"""The demo shop: a product page of a fictional shop with the web chat widget.

Routes:

- ``GET /``: the product page. The shopper chosen with the login picker (a cookie) is signed here,
  on the server, with ``SHOP_IDENTITY_SECRET``; the page carries only the customer id and its
  identity token (the widget sends it in ``session_request``), never the secret.
- ``POST /login`` (form or JSON ``{"customer_id"}``): log in as a demo customer, or as an anonymous
  shopper with ``""`` / ``"anonymous"``; a form is redirected to ``/``, JSON is answered with the
  identity. An unknown customer is ``400`` JSON ``{"error": {"code", "message"}}``.
- ``GET /static/<path>``: the widget's script and styles, the vendored socket.io client.
- ``GET /health``.

The widget connects to the Rasa server's socket.io (``connectors.web.WebInput``) at
``RASA_HOST:RASA_PORT``; the page's Content-Security-Policy allows exactly that origin.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple
from urllib.parse import parse_qs

import yaml  # type: ignore[import-untyped]
from sanic import Sanic, response
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.identity import identity_token_for
from bot.settings import Settings

SHOP_DIR = Path(__file__).resolve().parent
STATIC_DIR = SHOP_DIR / "static"
PAGE_TEMPLATE = SHOP_DIR / "page.html"
TEXTS_FILE = SHOP_DIR / "texts.yml"
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
COOKIE = "shop_customer"
ANONYMOUS = "anonymous"
MAX_BODY = 4 * 1024

with TEXTS_FILE.open(encoding="utf-8") as _handle:
    TEXTS: Dict[str, Any] = yaml.safe_load(_handle)
"""What the page says (``shop/texts.yml``)."""


@dataclass(frozen=True)
class DemoCustomer:
    """A demo customer of the reference CRM (crm/DEMO_CUSTOMERS.md) the picker offers."""

    customer_id: str
    name: str
    case: str


DEMO_CUSTOMERS: Tuple[DemoCustomer, ...] = tuple(DemoCustomer(**entry) for entry in TEXTS["demo_customers"])
"""The shoppers the login picker offers (the anonymous shopper besides)."""

_BY_ID = {customer.customer_id: customer for customer in DEMO_CUSTOMERS}


def _json(body: Any, status: int = 200) -> HTTPResponse:
    return response.json(body, status=status, dumps=json.dumps, ensure_ascii=False, headers={"Cache-Control": "no-store"})


def _error(status: int, code: str, message: str) -> HTTPResponse:
    return _json({"error": {"code": code, "message": message}}, status=status)


def socket_origin(settings: Settings, request: Request) -> str:
    """Where the widget reaches the Rasa server: its host (this page's host when Rasa listens on
    every interface) and port."""
    host = settings.rasa_host
    if host in ("0.0.0.0", "", "::"):
        host = (request.host or "127.0.0.1").rsplit(":", 1)[0] or "127.0.0.1"
    return f"http://{host}:{settings.rasa_port}"


IDENTITY_TOKEN_TTL_S = 2 * 3600
"""How long the identity token the page hands the widget stays valid (a reload makes a new one)."""


def identity(settings: Settings, customer_id: Optional[str]) -> Dict[str, Any]:
    """What the page tells the widget about the shopper: the id and an identity token made here, never the secret."""
    customer = _BY_ID.get(customer_id or "")
    if customer is None:
        return {"customer_id": None, "identity_token": None, "name": TEXTS["guest_name"]}
    token = identity_token_for(settings.shop_identity_secret, customer.customer_id, ttl_s=IDENTITY_TOKEN_TTL_S)
    return {"customer_id": customer.customer_id, "identity_token": token, "name": customer.name}


def render_page(template: str, settings: Settings, request: Request, customer_id: Optional[str]) -> str:
    """The product page for a shopper."""
    shopper = identity(settings, customer_id)
    config = {**shopper, "socket_url": socket_origin(settings, request), "socket_path": "/socket.io"}
    options = [f'<option value="{ANONYMOUS}"{" selected" if shopper["customer_id"] is None else ""}>{html.escape(TEXTS["guest_option"])}</option>']
    for customer in DEMO_CUSTOMERS:
        selected = " selected" if customer.customer_id == shopper["customer_id"] else ""
        options.append(f'<option value="{customer.customer_id}"{selected}>'
                       f'{html.escape(customer.customer_id)} {html.escape(customer.name)}（{html.escape(customer.case)}）</option>')
    # JSON inside <script type="application/json">: only "</" could end the element early.
    config_json = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")
    return (template.replace("{{config}}", config_json)
            .replace("{{options}}", "\n".join(options))
            .replace("{{shopper}}", html.escape(str(shopper["name"]))))


def _login_choice(request: Request) -> Tuple[Optional[str], bool]:
    """The customer id a login request chose (None: anonymous) and whether it came as JSON.

    Raises:
        ValueError: the body is neither a form nor a JSON object with a string ``customer_id``.
    """
    raw = request.body or b""
    content_type = (request.headers.get("content-type") or "").lower()
    if content_type.startswith("application/json"):
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError("not JSON") from error
        if not isinstance(body, dict):
            raise ValueError("not an object")
        choice, as_json = body.get("customer_id"), True
    else:
        try:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError as error:
            raise ValueError("not UTF-8") from error
        choice, as_json = (form.get("customer_id") or [""])[0], False
    if choice is None:
        return None, as_json
    if not isinstance(choice, str):
        raise ValueError("customer_id is not a string")
    return (None if choice in ("", ANONYMOUS) else choice), as_json


def create_app(settings: Settings, name: str = "shop") -> Sanic:
    """Build the demo shop application.

    Args:
        settings: the stack's settings (identity secret, Rasa server address, shop port).
        name: the Sanic app name (unique per process).
    """
    app = Sanic(name)
    app.config.REQUEST_MAX_SIZE = MAX_BODY
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.ACCESS_LOG = False
    template = PAGE_TEMPLATE.read_text(encoding="utf-8")
    static_files = {path.relative_to(STATIC_DIR).as_posix(): path.read_bytes()
                    for path in STATIC_DIR.rglob("*") if path.is_file() and path.suffix in STATIC_TYPES}

    def security_headers(request: Request) -> Dict[str, str]:
        origin = socket_origin(settings, request)
        socket_ws = "ws" + origin.removeprefix("http")
        return {
            "Content-Security-Policy": (f"default-src 'self'; connect-src 'self' {origin} {socket_ws}; img-src 'self' data:; "
                                        "style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'"),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }

    @app.exception(SanicException)
    async def sanic_error(request: Request, error: SanicException) -> HTTPResponse:
        status = getattr(error, "status_code", 500) or 500
        code = "not_found" if status == 404 else "bad_request"
        return _error(status, code, TEXTS["errors"][code])

    @app.get("/health")
    async def health(request: Request) -> HTTPResponse:
        return _json({"status": "ok"})

    @app.get("/")
    async def page(request: Request) -> HTTPResponse:
        customer_id = request.cookies.get(COOKIE)
        body = render_page(template, settings, request, customer_id if customer_id in _BY_ID else None)
        return response.html(body, headers=security_headers(request))

    @app.post("/login")
    async def login(request: Request) -> HTTPResponse:
        try:
            customer_id, as_json = _login_choice(request)
        except ValueError:
            return _error(400, "invalid_request", TEXTS["errors"]["invalid_login"])
        if customer_id is not None and customer_id not in _BY_ID:
            return _error(400, "unknown_customer", TEXTS["errors"]["unknown_customer"])
        if as_json:
            shopper = identity(settings, customer_id)
            answer = _json({"customer_id": shopper["customer_id"], "name": shopper["name"]})
        else:
            answer = response.redirect("/", status=303)
        if customer_id is None:
            answer.cookies[COOKIE] = ""
            answer.cookies[COOKIE]["max-age"] = 0
        else:
            answer.cookies[COOKIE] = customer_id
            answer.cookies[COOKIE]["max-age"] = 30 * 24 * 3600
        answer.cookies[COOKIE]["httponly"] = True
        answer.cookies[COOKIE]["samesite"] = "Lax"
        answer.cookies[COOKIE]["path"] = "/"
        return answer

    @app.get("/static/<path:path>")
    async def static(request: Request, path: str) -> HTTPResponse:
        content = static_files.get(path)
        if content is None:
            return _error(404, "not_found", TEXTS["errors"]["not_found"])
        return response.raw(content, content_type=STATIC_TYPES[Path(path).suffix],
                            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})

    @app.get("/favicon.ico")
    async def favicon(request: Request) -> HTTPResponse:
        return response.empty(status=204)

    return app
