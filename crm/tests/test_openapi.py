"""In-process checks of the app: the OpenAPI document covers every route; errors stay JSON."""

from __future__ import annotations

import asyncio
import json
import re
from types import SimpleNamespace

from crm.app import create_app
from crm.openapi import build_openapi


def _routes() -> set:
    app = create_app()
    routes = set()
    for route in app.router.routes:
        path = "/" + re.sub(r"<(\w+)(:[^>]*)?>", r"{\1}", route.path)
        for method in route.methods:
            if method not in ("HEAD", "OPTIONS"):
                routes.add((method.lower(), path))
    return routes


def test_every_route_is_described() -> None:
    document = build_openapi()
    described = {(method, path) for path, methods in document["paths"].items() for method in methods}
    routes = _routes()
    assert routes and routes == described


def test_references_resolve_and_errors_are_described() -> None:
    document = build_openapi()
    schemas = document["components"]["schemas"]
    for reference in re.findall(r"#/components/schemas/(\w+)", str(document)):
        assert reference in schemas
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert operation["responses"], (method, path)
            if path.startswith("/api/"):
                assert "401" in operation["responses"], (method, path)
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "path":
                        assert "{" + parameter["name"] + "}" in path


def test_unexpected_errors_become_json_500() -> None:
    app = create_app()
    error = RuntimeError("boom")
    handler = app.error_handler.lookup(error, None)
    response = asyncio.run(handler(SimpleNamespace(method="GET", path="/api/x"), error))
    assert response.status == 500
    assert response.content_type.startswith("application/json")
    assert json.loads(response.body) == {"error": {"code": "internal", "message": "服务器内部错误，请稍后再试"}}
