"""Signing in to the desk console in a real browser, as an agent or supervisor would."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple


def log_in(page: Any, desk_url: str, username: str, password: Optional[str] = None) -> None:
    """Opens the console at ``desk_url`` and signs in as ``username`` (password ``<username>-pass`` by default)."""
    page.goto(desk_url + "/")
    page.fill("#login-username", username)
    page.fill("#login-password", password or f"{username}-pass")
    page.click("#login-submit")


def signed_in_page(browser: Any, desk_url: str, username: str) -> Tuple[Any, List[str]]:
    """A new console page signed in as ``username`` and connected live, and the list its script errors go to."""
    page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    errors: List[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, desk_url, username)
    page.wait_for_selector("#live-dot.on")
    return page, errors
