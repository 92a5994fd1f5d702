"""Hosts on one machine: network namespaces on a bridge, and the processes started in them.

Each :class:`~fleet.topology.Host` becomes a namespace ``shopfleet-<name>`` with its loopback up
and one leg of a veth pair, ``eth0`` with the host's address; the other leg is a port of the
bridge ``sfbr0``, which holds the root namespace's address (the gateway). Processes start in their
namespace and in a UTS namespace of their own whose hostname is the host's name (the desk names
its consumer after the hostname), each in a new session. Killing a host kills every process in
its namespace (``ip netns pids``), as if the machine died.

Name lookups inside a namespace would wait for a DNS server it cannot reach (``getfqdn`` of an
address: seconds each), so each namespace gets its own ``/etc/netns/<namespace>/resolv.conf``
(a resolver on the host's own loopback, where nothing listens: lookups fail at once) and ``hosts``
(the fleet's host names), which ``ip netns exec`` mounts over the machine's files for processes
started there.

:meth:`Network.destroy` removes everything :meth:`Network.create` made, also after a failed run;
:func:`remove_leftovers` removes what a killed earlier run left (namespaces and bridge by name).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Dict, List, Optional, Sequence

from fleet.topology import BRIDGE, GATEWAY, HOSTS, NAMESPACE_PREFIX, PREFIX_LEN, SUBNET, Host

NETNS_ETC = Path("/etc/netns")
"""Where ``ip netns exec`` finds a namespace's own resolv.conf and hosts."""


class FleetError(RuntimeError):
    """The fleet cannot be built or run here (the message says what to do)."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip <args>``; raises :class:`FleetError` with its message when it fails and ``check``."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise FleetError(f"ip {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done


def preflight() -> List[str]:
    """Check that this machine can build the fleet; returns what was installed on the way.

    Needs root (namespaces, veth, a bridge), ``ip`` and ``unshare``; installs the Debian packages
    ``haproxy`` and ``redis-sentinel`` with apt-get when their programs are missing (saying so).

    Raises:
        FleetError: not root, no ``ip``/``unshare``, apt-get failed, or the subnet is taken.
    """
    if os.geteuid() != 0:
        raise FleetError("make fleet-test needs root: it creates network namespaces, veth pairs and a bridge (sudo make fleet-test)")
    for tool, package in (("ip", "iproute2"), ("unshare", "util-linux")):
        if not shutil.which(tool):
            raise FleetError(f"`{tool}` is missing: apt-get install {package}")
    installed: List[str] = []
    missing = [package for program, package in (("haproxy", "haproxy"), ("redis-sentinel", "redis-sentinel")) if not shutil.which(program)]
    if missing:
        print(f"installing {', '.join(missing)} with apt-get (Debian packages) ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env, capture_output=True, text=True,
                              timeout=600)
        if done.returncode != 0:
            raise FleetError(f"apt-get install {' '.join(missing)} failed:\n{done.stderr[-2000:]}")
        installed = missing
    routes = ip("-4", "route", "show", SUBNET).stdout.strip()
    if routes and BRIDGE not in routes:
        raise FleetError(f"the fleet's subnet {SUBNET} is already routed on this machine ({routes}): stop what uses it")
    return installed


def remove_leftovers() -> List[str]:
    """Delete namespaces ``shopfleet-*`` and the bridge left by an earlier run that was killed; returns their names."""
    removed = []
    for line in ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(NAMESPACE_PREFIX):
            kill_namespace(name)
            ip("netns", "delete", name, check=False)
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
            removed.append(name)
    if ip("link", "show", BRIDGE, check=False).returncode == 0:
        ip("link", "delete", BRIDGE, check=False)
        removed.append(BRIDGE)
    return removed


def namespace_pids(namespace: str) -> List[int]:
    """Every process in ``namespace``."""
    done = ip("netns", "pids", namespace, check=False)
    return [int(pid) for pid in done.stdout.split() if pid.isdigit()]


def kill_namespace(namespace: str, grace_s: float = 0.0) -> int:
    """Stop every process in ``namespace`` (SIGTERM and ``grace_s`` to exit first, when given); returns how many were killed."""
    pids = namespace_pids(namespace)
    if grace_s:
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and namespace_pids(namespace):
            time.sleep(0.1)
        pids = namespace_pids(namespace)
    for pid in pids:
        _signal(pid, signal.SIGKILL)
    return len(pids)


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


class Network:
    """The bridge and the namespaces of the fleet's hosts, and the processes started in them.

    Args:
        log_dir: where each process's output goes.
        hosts: the hosts to create (default: every host of the topology).
    """

    def __init__(self, log_dir: Path, hosts: Sequence[Host] = HOSTS) -> None:
        self.log_dir = log_dir
        self.hosts = tuple(hosts)
        self.created: List[str] = []
        self.bridge = False
        self.processes: Dict[str, subprocess.Popen[bytes]] = {}

    def create(self) -> None:
        """The bridge with the gateway address, then one namespace per host on it.

        Raises:
            FleetError: an ``ip`` command failed (what was made so far is left for :meth:`destroy`).
        """
        ip("link", "add", BRIDGE, "type", "bridge")
        self.bridge = True
        ip("addr", "add", f"{GATEWAY}/{PREFIX_LEN}", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for each in self.hosts:
            ip("netns", "add", each.namespace)
            self.created.append(each.namespace)
            ip("link", "add", each.veth, "type", "veth", "peer", "name", "eth0", "netns", each.namespace)
            ip("link", "set", each.veth, "master", BRIDGE)
            ip("link", "set", each.veth, "up")
            ip("-n", each.namespace, "addr", "add", f"{each.address}/{PREFIX_LEN}", "dev", "eth0")
            ip("-n", each.namespace, "link", "set", "eth0", "up")
            ip("-n", each.namespace, "link", "set", "lo", "up")
            ip("-n", each.namespace, "route", "add", "default", "via", GATEWAY)
            self._write_etc(each)

    def _write_etc(self, each: Host) -> None:
        etc = NETNS_ETC / each.namespace
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text("# make fleet-test: no DNS inside the fleet\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        names = "".join(f"{other.address} {other.name}\n" for other in HOSTS)
        (etc / "hosts").write_text(f"127.0.0.1 localhost {each.name}\n{GATEWAY} gateway\n{names}")

    def start(self, name: str, on: Optional[Host], command: Sequence[str], env: Dict[str, str],
              cwd: Optional[Path] = None) -> subprocess.Popen[bytes]:
        """Start ``command`` on host ``on`` (None: the root namespace) as process ``name``, output to ``<log_dir>/<name>.log``."""
        argv = list(command)
        if on is not None:
            argv = ["ip", "netns", "exec", on.namespace, "unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"',
                    on.name, *argv]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log: IO[bytes] = open(self.log_dir / f"{name}.log", "ab")
        try:
            process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self.processes[name] = process
        return process

    def kill_host(self, each: Host) -> int:
        """SIGKILL every process on ``each``, as if the machine died; returns how many there were."""
        return kill_namespace(each.namespace)

    def stop_process(self, name: str, grace_s: float = 10.0) -> None:
        """Stop process ``name`` and its session (SIGTERM, then SIGKILL after ``grace_s``)."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        except ProcessLookupError:
            pass

    def destroy(self) -> List[str]:
        """Stop every process, delete every namespace (their veth legs go with them) and the bridge; returns what failed."""
        problems: List[str] = []
        for name in list(self.processes):
            try:
                self.stop_process(name, grace_s=5.0)
            except OSError as error:
                problems.append(f"{name}: {error}")
        for namespace in self.created:
            kill_namespace(namespace, grace_s=3.0)
        for namespace in reversed(self.created):
            done = ip("netns", "delete", namespace, check=False)
            if done.returncode != 0:
                problems.append(f"netns {namespace}: {done.stderr.strip()}")
            shutil.rmtree(NETNS_ETC / namespace, ignore_errors=True)
        self.created.clear()
        if self.bridge:
            done = ip("link", "delete", BRIDGE, check=False)
            if done.returncode != 0:
                problems.append(f"bridge {BRIDGE}: {done.stderr.strip()}")
            self.bridge = False
        return problems
