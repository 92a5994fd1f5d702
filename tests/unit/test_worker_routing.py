"""The pure parts of the web channel's worker routing: sids, the fence, the rebuilt request, owners.

The handoff itself (a connection's descriptor passed to the owning Sanic worker) runs against a
real Rasa server with two workers in ``tests/integration/test_web_workers.py`` and in the browser
in ``tests/browser/test_webchat.py``.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import engineio
import pytest

from bot.settings import load_settings
from connectors import worker_routing
from connectors.web import WebSocketServer
from connectors.worker_routing import RoutedEngineServer, WorkerRouter, instance_name, parse_sid, replayed_request, worker_sid


def test_the_fence_accepts_the_installed_sanic_and_engineio() -> None:
    assert worker_routing.problem() is None
    assert worker_routing.current_hashes() == worker_routing.TARGETS


def test_a_changed_target_turns_routing_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(worker_routing.TARGETS, "engineio.base_server:BaseServer.generate_id", "0" * 64)
    worker_routing.problem.cache_clear()
    try:
        assert "generate_id changed" in (worker_routing.problem() or "")
        router = WorkerRouter.from_settings(dataclasses.replace(load_settings({}), var_dir=tmp_path))
        assert not router.enabled and router.sid("stockid") == "stockid"
    finally:
        monkeypatch.undo()
        worker_routing.problem.cache_clear()


def test_sids_name_instance_and_worker() -> None:
    stock = engineio.AsyncServer().generate_id()
    sid = worker_sid("rasa1", 4242, stock)
    assert sid.startswith("rasa1.4242.") and parse_sid(sid) == ("rasa1", 4242)
    for other in (stock, "", None, 42, ["rasa1.1.x"], "rasa1.x.abc", "a b.1.c", "rasa1.1.", "rasa1.1.a/b", "x" * 40 + ".1.abc"):
        assert parse_sid(other) is None


def test_instance_names_are_safe_in_a_sid() -> None:
    assert instance_name("rasa1") == "rasa1"
    assert instance_name("shop.example.com") == "shop-example-com"
    assert instance_name("..") == "rasa"
    assert len(instance_name("a" * 100)) == 32
    assert parse_sid(worker_sid(instance_name(""), 1, "abc")) is not None  # the host name


def test_the_engineio_server_hands_out_worker_sids(tmp_path: Path) -> None:
    settings = dataclasses.replace(load_settings({}), var_dir=tmp_path, rasa_instance="rasa2")
    sio = WebSocketServer(async_mode="sanic", router=WorkerRouter.from_settings(settings))
    assert isinstance(sio.eio, RoutedEngineServer)
    assert parse_sid(sio.eio.generate_id()) == ("rasa2", os.getpid())
    off = WebSocketServer(async_mode="sanic", router=WorkerRouter.from_settings(dataclasses.replace(settings, web_worker_routing=False)))
    assert parse_sid(off.eio.generate_id()) is None


def test_the_rebuilt_request_carries_its_whole_body_without_framing() -> None:
    request = SimpleNamespace(
        head=b"POST /socket.io/?EIO=4&transport=polling&sid=rasa1.7.abc HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n"
             b"Expect: 100-continue\r\nOrigin: https://shop.example.com",
        body=b'42["user_uttered",{}]')
    assert replayed_request(request) == (
        b"POST /socket.io/?EIO=4&transport=polling&sid=rasa1.7.abc HTTP/1.1\r\nHost: shop\r\nOrigin: https://shop.example.com\r\n"
        b"Content-Length: 21\r\n\r\n" b'42["user_uttered",{}]')
    upgrade = SimpleNamespace(head=b"GET /socket.io/?sid=x HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade", body=b"")
    assert replayed_request(upgrade) == b"GET /socket.io/?sid=x HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def test_only_another_listening_worker_of_this_instance_owns_a_sid(tmp_path: Path) -> None:
    router = WorkerRouter(tmp_path, "rasa1", enabled=True)
    other = os.getpid() + 1
    assert router.owner(worker_sid("rasa1", other, "abc")) is None  # not listening
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listening.bind(str(router.socket_path(other)))
        assert router.owner(worker_sid("rasa1", other, "abc")) == router.socket_path(other)
        assert router.owner(worker_sid("rasa2", other, "abc")) is None  # another instance: the load balancer's job
        assert router.owner(worker_sid("rasa1", os.getpid(), "abc")) is None  # this worker's own
        assert router.owner("stock-sid") is None and router.owner(None) is None
        assert WorkerRouter(tmp_path, "rasa1", enabled=False).owner(worker_sid("rasa1", other, "abc")) is None
    finally:
        listening.close()


def test_a_worker_removes_the_sockets_of_dead_workers_when_it_starts_listening(tmp_path: Path) -> None:
    router = WorkerRouter(tmp_path, "rasa1", enabled=True)
    dead = router.socket_path(2**22 + 12345)  # beyond Linux's pid_max: no such process
    alive = router.socket_path(os.getppid())
    other_instance = tmp_path / "web-rasa2-1.sock"
    for path in (dead, alive, other_instance):
        path.touch()
    router._remove_stale_sockets()
    assert not dead.exists() and alive.exists() and other_instance.exists()
