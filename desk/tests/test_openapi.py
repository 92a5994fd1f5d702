"""The desk's OpenAPI document describes exactly the routes the app has, with the error shape."""

from __future__ import annotations

import json
import re
from typing import Set, Tuple

from bot.settings import load_settings
from desk.app import create_app
from desk.openapi import build_openapi


def app_routes() -> Set[Tuple[str, str]]:
    """(method, path) of every route of the desk app, paths written as OpenAPI writes them."""
    app = create_app(load_settings({}), name="desk_openapi_check")
    found = set()
    for route in app.router.routes:
        path = "/" + re.sub(r"<(\w+)(?::[^>]*)?>", r"{\1}", route.path).lstrip("/")
        found.update((method.lower(), path) for method in route.methods if method not in ("HEAD", "OPTIONS"))
    return found


def test_the_document_describes_every_route_and_only_those():
    document = build_openapi()
    described = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert described == app_routes()


def test_operations_are_complete():
    document = build_openapi()
    json.dumps(document)  # served as JSON
    schemas = document["components"]["schemas"]
    assert set(re.findall(r"#/components/schemas/(\w+)", json.dumps(document))) <= set(schemas)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            names = set(re.findall(r"{(\w+)}", path))
            assert names == {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}, (method, path)
            if path.startswith("/api/") and path not in ("/api/login", "/api/ws"):
                assert operation["security"] == [{"bearer": []}] and "401" in operation["responses"], (method, path)
            if "requestBody" in operation:
                assert "400" in operation["responses"], (method, path)
    login = document["paths"]["/api/login"]["post"]
    assert {"401", "429"} <= set(login["responses"]) and login["security"] == []
    assert "403" in document["paths"]["/api/metrics"]["get"]["responses"]
    assert schemas["Error"]["required"] == ["error"]
