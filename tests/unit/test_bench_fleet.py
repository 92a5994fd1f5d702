"""The bench's fleet (bench/fleet.py): its HAProxy configuration balances real servers round-robin,
its stats socket is read, and the fleet is skipped without HAProxy before anything starts."""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, List

import pytest

from bench import report
from bench.fleet import FleetStack, FleetUnavailable, distinct_ports, haproxy_binary, haproxy_config, haproxy_servers


class _Rasa(BaseHTTPRequestHandler):
    """Stands in for a Rasa server: the health check and the webhook, answered with the server's name."""

    def do_GET(self) -> None:
        self._answer(200 if self.path == "/webhooks/app/" else 404, {"status": "ok"})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer(200, [{"text": self.server.server_name_tag}])  # type: ignore[attr-defined]

    def _answer(self, status: int, body: object) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[List[int]]:
    started = []
    for name in ("one", "two"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Rasa)
        server.server_name_tag = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
    yield [server.server_address[1] for server in started]
    for server in started:
        server.shutdown()
        server.server_close()


def _post(url: str) -> str:
    request = urllib.request.Request(url, data=b'{"sender": "s", "message": "hi"}', headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())[0]["text"]


def test_the_generated_config_balances_round_robin_with_health_checks(tmp_path: Path, servers: List[int]) -> None:
    try:
        binary = haproxy_binary()
    except FleetUnavailable as error:
        pytest.skip(str(error))
    front = distinct_ports(1)[0]
    config, sock = tmp_path / "haproxy.cfg", tmp_path / "haproxy.sock"
    config.write_text(haproxy_config(front, servers, sock), encoding="utf-8")
    subprocess.run([binary, "-c", "-q", "-f", str(config)], check=True)
    process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if sock.exists() and all(s["status"] == "UP" for s in haproxy_servers(sock).values()):
                break
            time.sleep(0.2)
        assert {name: s["status"] for name, s in haproxy_servers(sock).items()} == {"rasa1": "UP", "rasa2": "UP"}
        answered = [_post(f"http://127.0.0.1:{front}/webhooks/app/webhook") for _ in range(6)]
        assert sorted(answered) == ["one"] * 3 + ["two"] * 3
        assert all(a != b for a, b in itertools.pairwise(answered))  # alternating
        assert {name: s["requests"] for name, s in haproxy_servers(sock).items()} == {"rasa1": 3, "rasa2": 3}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_without_haproxy_the_fleet_is_skipped_before_starting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAPROXY_BIN", str(tmp_path / "no-haproxy"))
    with pytest.raises(FleetUnavailable, match="haproxy is not installed"):
        FleetStack(tmp_path / "model.tar.gz", directory=tmp_path / "fleet")
    assert not (tmp_path / "fleet").exists()


def test_the_fleet_is_compared_with_one_instance() -> None:
    def run(requests_per_s: float, p95: float, **extra: object) -> dict:
        figures = {"requests_per_s": requests_per_s, "replies_per_s": requests_per_s, "p50_ms": 10.0, "p95_ms": p95, "errors": 0}
        return {"concurrency": 20, "summary": {"all": figures}, **extra}

    results = {"ours": run(50.0, 100.0, rasa_workers=2),
               "fleet": run(45.0, 120.0, instances=2, rasa_workers=1,
                            haproxy_servers={"rasa1": {"status": "UP", "requests": 10, "errors": 0}})}
    comparison = report.fleet_comparison(results)
    assert comparison is not None
    assert comparison["ratios"] == {"requests_per_s": 0.9, "replies_per_s": 0.9, "p50_ms": 1.0, "p95_ms": 1.2}
    assert "rasa1 10 (UP)" in report.render_fleet(comparison)
    assert report.fleet_comparison({"ours": results["ours"]}) is None
