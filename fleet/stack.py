"""The running fleet: its files, its processes on their hosts, and handles on Redis, Sentinel and HAProxy.

Services start through the one launcher (``python -m bot.launcher serve ROLE``) with the settings
of :func:`fleet.topology.service_env`; Redis, the sentinels and HAProxy from the committed files
in ``fleet/`` with only the per-host lines (addresses, directories, passwords) generated into the
run's directory (``var/fleet/<time>/``).
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, TypeVar

import redis

from fleet import topology
from fleet.hosts import Network
from fleet.topology import GATEWAY, LB, MASTER_NAME, REDIS_PORT, SENTINEL_PORT, Host, Secrets

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = Path(__file__).resolve().parent
T = TypeVar("T")


def wait_until(what: str, check: Callable[[], Optional[T]], timeout_s: float, every_s: float = 0.2) -> T:
    """Poll ``check`` until it returns something true; its value.

    Raises:
        RuntimeError: not within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    last_error = ""
    while time.monotonic() < deadline:
        try:
            found = check()
            if found:
                return found
        except (OSError, redis.RedisError, ValueError, KeyError) as error:
            last_error = f" (last: {type(error).__name__}: {error})"
        time.sleep(every_s)
    raise RuntimeError(f"{what}: not within {timeout_s:.0f} s{last_error}")


def http_status(url: str, timeout_s: float = 2.0) -> int:
    """The status of GET ``url``; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return 0


@dataclass
class Fleet:
    """The fleet of one run.

    Args:
        run_dir: the run's directory (configuration copies, each host's VAR_DIR, logs).
        keys: the run's secrets.
        model: the trained model every Rasa server loads.
        database_url: the CRM's PostgreSQL database.
        python: the interpreter of the services (the project's .venv).
    """

    run_dir: Path
    keys: Secrets
    model: Path
    database_url: str
    python: str
    network: Network = field(init=False)
    started_at: Dict[str, float] = field(default_factory=dict)
    """When each service became healthy (seconds since the fleet started)."""
    t0: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.network = Network(self.run_dir / "logs")

    # Addresses -------------------------------------------------------------------------------

    app_url = f"http://{LB}:{topology.RASA_PORT}/webhooks/app"
    desk_url = f"http://{LB}:{topology.DESK_PORT}"
    crm_url = f"http://{GATEWAY}:{topology.CRM_PORT}"

    @staticmethod
    def direct_app_url(on: Host) -> str:
        """One Rasa server's app channel, not through the load balancer."""
        return f"http://{on.address}:{topology.RASA_PORT}/webhooks/app"

    @staticmethod
    def metrics_url(role: str, on: Optional[Host]) -> str:
        """One service's Prometheus page, straight to it (the CRM on the gateway)."""
        if role == "crm":
            return f"http://{GATEWAY}:{topology.CRM_PORT}/metrics"
        assert on is not None
        return f"http://{on.address}:{topology.ROLE_PORTS[role]}/metrics"

    @staticmethod
    def health_url(role: str, on: Optional[Host]) -> str:
        if role == "crm":
            return f"http://{GATEWAY}:{topology.CRM_PORT}/health"
        assert on is not None
        path = "/webhooks/app/" if role == "rasa" else "/health"
        return f"http://{on.address}:{topology.ROLE_PORTS[role]}{path}"

    # Files -----------------------------------------------------------------------------------

    def write_files(self) -> None:
        """The agents file, the service policy, and each Redis server's and sentinel's configuration."""
        from bench.handoff import bench_policy
        from desk.auth import hash_password

        self.run_dir.mkdir(parents=True, exist_ok=True)
        agents = "".join(f'  {name}:\n    display_name: 客服{name[-1]}号\n    role: agent\n    password: "{hash_password(password)}"\n'
                         for name, password in self.keys.agent_passwords.items())
        (self.run_dir / "agents.yml").write_text(f"agents:\n{agents}", encoding="utf-8")
        bench_policy(self.run_dir / "service.yml", 50)  # open around the clock, room for every shopper
        master = topology.hosts_running("redis")[0]
        for each in topology.hosts_running("redis"):
            data = self.host_dir(each) / "redis"
            data.mkdir(parents=True, exist_ok=True)
            lines = [f"include {CONFIG_DIR / 'redis' / 'redis.conf'}", f"bind {each.address}", f"dir {data}",
                     f'requirepass "{self.keys.redis_password}"', f'masterauth "{self.keys.redis_password}"']
            if each != master:
                lines.append(f"replicaof {master.address} {REDIS_PORT}")
            (data / "redis.conf").write_text("\n".join(lines) + "\n")
        for each in topology.hosts_running("sentinel"):
            data = self.host_dir(each) / "sentinel"
            data.mkdir(parents=True, exist_ok=True)
            extra = [f"bind {each.address}", f"dir {data}", f'requirepass "{self.keys.sentinel_password}"',
                     f'sentinel sentinel-pass "{self.keys.sentinel_password}"',
                     f'sentinel auth-pass {MASTER_NAME} "{self.keys.redis_password}"']
            (data / "sentinel.conf").write_text((CONFIG_DIR / "redis" / "sentinel.conf").read_text() + "\n".join(extra) + "\n")

    def host_dir(self, on: Optional[Host]) -> Path:
        return self.run_dir / "hosts" / (on.name if on else "gateway")

    # Processes -------------------------------------------------------------------------------

    def _base_env(self) -> Dict[str, str]:
        import os

        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}

    def start_redis(self, on: Host) -> None:
        """Start the redis-server of ``on`` (Debian's) from its generated configuration."""
        self.network.start(f"redis@{on.name}", on, ["redis-server", str(self.host_dir(on) / "redis" / "redis.conf")], self._base_env())

    def start_sentinel(self, on: Host) -> None:
        """Start the sentinel of ``on`` (Debian's redis-sentinel) from its own copy of the configuration."""
        self.network.start(f"sentinel@{on.name}", on, ["redis-sentinel", str(self.host_dir(on) / "sentinel" / "sentinel.conf")],
                           self._base_env())

    def start_service(self, role: str, on: Optional[Host]) -> str:
        """Start ``python -m bot.launcher serve <role>`` on ``on`` (None: the root namespace); returns the process name."""
        env = {**self._base_env(), **topology.service_env(role, on, self.keys, self.run_dir, self.database_url)}
        command = [self.python, "-m", "bot.launcher", "serve", role]
        if role == "rasa":
            command += ["--model", str(self.model)]
        name = f"{role}@{on.name if on else 'gateway'}"
        self.network.start(name, on, command, env, cwd=PROJECT_ROOT)
        return name

    def wait_service(self, role: str, on: Optional[Host], timeout_s: float) -> float:
        """Wait until the service answers its health check; seconds since the fleet started.

        Raises:
            RuntimeError: its launcher exited first, or no answer within ``timeout_s``.
        """
        name = f"{role}@{on.name if on else 'gateway'}"
        process = self.network.processes[name]
        url = self.health_url(role, on)

        def healthy() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}: see {self.network.log_dir / (name + '.log')}")
            return http_status(url) == 200

        wait_until(f"{name} healthy at {url}", healthy, timeout_s, every_s=0.5)
        self.started_at[name] = round(time.monotonic() - self.t0, 1)
        return self.started_at[name]

    def start_haproxy(self) -> None:
        """Start HAProxy on host ``lb`` with ``fleet/haproxy.cfg`` (checked first)."""
        env = {**self._base_env(), "FLEET_RUN_DIR": str(self.run_dir)}
        config = str(CONFIG_DIR / "haproxy.cfg")
        check = subprocess.run(["haproxy", "-c", "-f", config], env=env, capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c -f {config}: {check.stdout}{check.stderr}")
        self.network.start("haproxy@lb", topology.host("lb"), ["haproxy", "-db", "-f", config], env)

    def kill_host(self, on: Host) -> int:
        """SIGKILL everything on ``on``; returns how many processes died."""
        killed = self.network.kill_host(on)
        for name in [name for name in self.network.processes if name.endswith(f"@{on.name}")]:
            self.network.processes[name].wait(timeout=10)
        return killed

    def kill_process(self, name: str) -> None:
        """SIGKILL one process of the fleet (e.g. ``redis@redis1``), its host living on."""
        import os
        import signal

        process = self.network.processes[name]
        for pid in self.network_pids(name):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=10)

    def network_pids(self, name: str) -> List[int]:
        """The pids of process ``name`` and its children."""
        process = self.network.processes[name]
        done = subprocess.run(["pgrep", "-s", str(process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in done.stdout.split()] or [process.pid]

    # Redis and Sentinel -----------------------------------------------------------------------

    def sentinel_client(self, on: Host) -> redis.Redis:
        return redis.Redis(host=on.address, port=SENTINEL_PORT, password=self.keys.sentinel_password, socket_timeout=2,
                           socket_connect_timeout=1, decode_responses=True)

    def master_address(self) -> Tuple[str, int]:
        """The master the first sentinel that answers names.

        Raises:
            redis.ConnectionError: no sentinel answered.
        """
        errors = []
        for each in topology.hosts_running("sentinel"):
            try:
                host, port = self.sentinel_client(each).sentinel_get_master_addr_by_name(MASTER_NAME)
                return str(host), int(port)
            except (redis.RedisError, TypeError) as error:
                errors.append(f"{each.name}: {error}")
        raise redis.ConnectionError(f"no sentinel names a master: {errors}")

    def redis_at(self, address: str, decode: bool = True) -> redis.Redis:
        return redis.Redis(host=address, port=REDIS_PORT, password=self.keys.redis_password, socket_timeout=5, socket_connect_timeout=2,
                           decode_responses=decode)

    def master_client(self, decode: bool = True) -> redis.Redis:
        """A client of the current master (asked of the sentinels now)."""
        return self.redis_at(self.master_address()[0], decode)

    def redis_host(self, address: str) -> Host:
        return next(h for h in topology.hosts_running("redis") if h.address == address)

    def wait_replication(self, timeout_s: float = 30.0) -> Tuple[str, str]:
        """Wait until the master has its replica in sync and every sentinel knows it; returns (master, replica) addresses."""
        def synced() -> Optional[Tuple[str, str]]:
            master = self.master_address()[0]
            info = self.redis_at(master).info("replication")
            if info.get("role") != "master" or int(info.get("connected_slaves", 0)) < 1:
                return None
            replica = str(info["slave0"]["ip"]) if isinstance(info.get("slave0"), dict) else ""
            state = self.redis_at(replica).info("replication") if replica else {}
            if state.get("master_link_status") != "up":
                return None
            for each in topology.hosts_running("sentinel"):
                known = self.sentinel_client(each).sentinel_slaves(MASTER_NAME)
                if not any(r["ip"] == replica and not r["is_sdown"] for r in known):
                    return None
            return master, replica
        return wait_until("Redis replication in sync and known to every sentinel", synced, timeout_s, every_s=0.5)

    # HAProxy ---------------------------------------------------------------------------------

    def haproxy_states(self) -> Dict[str, str]:
        """``backend/server`` → status (UP, DOWN ...), from HAProxy's admin socket."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(self.run_dir / "haproxy.sock"))
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        lines = b"".join(chunks).decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        states = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("svname") not in ("FRONTEND", "BACKEND", None):
                states[f"{row['pxname']}/{row['svname']}"] = row.get("status", "")
        return states

    def wait_backends(self, wanted: str = "UP", servers: Optional[List[str]] = None, timeout_s: float = 30.0) -> Dict[str, str]:
        """Wait until HAProxy sees ``servers`` (default: all) in state ``wanted``."""
        def ready() -> Optional[Dict[str, str]]:
            states = self.haproxy_states()
            chosen = servers or list(states)
            return states if all(states.get(s, "").startswith(wanted) for s in chosen) else None
        return wait_until(f"HAProxy seeing {servers or 'every server'} {wanted}", ready, timeout_s, every_s=0.5)

    def destroy(self) -> List[str]:
        """Stop every process and remove the hosts (the run's directory stays, with every log); returns what failed."""
        return self.network.destroy()
