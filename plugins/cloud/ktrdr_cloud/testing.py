"""Throw-away Ray clusters started with ``ray start``, for tests and benchmarks.

The cloud tests run against a real, separately started cluster (the same
way a user runs one: ``ray start --head`` plus more nodes), never a Ray
instance inside the test process. :func:`start_cluster` starts one on
127.0.0.1 with free ports and its own ``--temp-dir``; every node is a
``ray start ... --block`` process in a session of its own, so the node's
Ray processes (GCS, raylet, workers) share that process group and die with
it. :meth:`LocalCluster.stop` ends them by that pid — never ``ray stop``,
which would stop every cluster on the machine — and a fault test kills one
node the same way (:meth:`LocalCluster.kill_node`).

Every wait here is bounded; a node that does not come up is an error that
carries the tail of its output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import attrs

__all__ = ["ClusterStartError", "LocalCluster", "RayNode", "free_port", "node_cpus", "start_cluster"]

#: how long one node may take to join (Ray's start-up on a loaded machine)
NODE_START_SECONDS = 90.0
#: how long a node may take to go after SIGTERM before its whole group is killed
STOP_SECONDS = 10.0


class ClusterStartError(RuntimeError):
    """A node of a throw-away cluster did not start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ray_executable() -> str:
    """The ``ray`` command of this interpreter's environment (the one whose Ray we test)."""
    beside = Path(sys.executable).with_name("ray")
    if beside.exists():
        return str(beside)
    found = shutil.which("ray")
    if found is None:
        raise ClusterStartError("the `ray` command is not installed (pip install ray)")
    return found


def _session_members(sid: int) -> list[int]:
    """Pids of the live processes in session ``sid`` (Linux ``/proc``; empty elsewhere)."""
    members = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after the command: state, ppid, pgrp, session
        if len(fields) > 3 and fields[3] == str(sid) and fields[0] != "Z" and int(entry.name) != sid:
            members.append(int(entry.name))
    return members


@attrs.define
class RayNode:
    """One ``ray start --block`` process (the leader of its own process group)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL every process of the node at once: the node dies as a machine would."""
        self._kill_session()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_SECONDS)

    def _kill_session(self) -> None:
        # Ray's workers get process groups of their own but stay in the node's session
        for pid in [self.pid, *_session_members(self.pid)]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM (Ray shuts the node down), then SIGKILL the group after :data:`STOP_SECONDS`."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_SECONDS)
        # whatever the node left behind (workers that outlived their raylet)
        self._kill_session()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_SECONDS)

    def output_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


@attrs.define
class LocalCluster:
    """A head and worker nodes on 127.0.0.1; ``address`` is the head's GCS (``127.0.0.1:PORT``)."""

    address: str
    temp_dir: Path
    head: RayNode
    workers: list[RayNode] = attrs.field(factory=list)
    own_temp_dir: bool = True

    @property
    def nodes(self) -> list[RayNode]:
        return [self.head, *self.workers]

    def kill_node(self, index: int) -> None:
        """Kill node ``index`` (0 is the head) with SIGKILL."""
        self.nodes[index].kill()

    def kill_head(self) -> None:
        self.head.kill()

    def stop(self) -> None:
        """Stop every node (workers first), then remove the temp dir if it was made here."""
        for node in reversed(self.nodes):
            node.stop()
        if self.own_temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _start_node(
    name: str,
    args: list[str],
    temp_dir: Path,
    env: Mapping[str, str],
    cpus: float,
    ray_command: str | None = None,
) -> RayNode:
    log = temp_dir / f"{name}.out"
    command = [
        ray_command or _ray_executable(),
        "start",
        *args,
        "--num-cpus",
        f"{cpus:g}",
        "--disable-usage-stats",
        "--temp-dir",
        str(temp_dir),
        "--block",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,  # its own group: stopped and killed by this pid
        )
    return RayNode(name=name, process=process, log=log)


def node_cpus(
    address: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> list[float] | None:
    """The CPUs of each alive node of the cluster at ``address``, asked in a child process.

    None when the cluster did not answer within ``timeout`` (this process never
    connects to Ray itself, so a test or benchmark stays a bystander).
    """
    code = (
        "import ray, sys, logging, json\n"
        "ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False,"
        " logging_level=logging.ERROR)\n"
        "alive = [n for n in ray.nodes() if n.get('Alive')]\n"
        "print(json.dumps([float(n.get('Resources', {}).get('CPU', 0)) for n in alive]))\n"
    )
    environment = dict(os.environ if env is None else env)
    environment.setdefault("RAY_AUTH_MODE", "disabled")
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, address],
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        return None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return None
    try:
        return [float(cpus) for cpus in json.loads(lines[-1])]
    except (ValueError, TypeError):
        return None


def _wait_for_port(node: RayNode, port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        if not node.alive():
            raise ClusterStartError(f"the Ray {node.name} node exited:\n{node.output_tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.2)
    raise ClusterStartError(f"the Ray {node.name} node did not listen on {port}:\n{node.output_tail()}")


def start_cluster(
    nodes: int = 2,
    cpus_per_node: float = 1,
    *,
    head_cpus: float | None = None,
    temp_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = NODE_START_SECONDS,
    ray_command: str | None = None,
) -> LocalCluster:
    """Start a head and ``nodes - 1`` worker nodes; returns once all of them are alive.

    ``head_cpus`` (default ``cpus_per_node``): 0 keeps every task off the head, so a
    fault test knows which node runs its training. ``env`` is the nodes'
    environment (default: this process's, with
    ``RAY_AUTH_MODE=disabled`` unless it is set). ``temp_dir``: Ray's
    ``--temp-dir`` (default a new folder, removed by :meth:`LocalCluster.stop`);
    keep it short, Ray puts Unix sockets under it. ``ray_command``: another
    environment's ``ray`` (a node whose Python lacks ktrdr); default this one's.
    """
    environment = dict(os.environ if env is None else env)
    environment.setdefault("RAY_AUTH_MODE", "disabled")
    environment.pop("RAY_ADDRESS", None)
    own = temp_dir is None
    folder = Path(tempfile.mkdtemp(prefix="ktrdr-ray-")) if temp_dir is None else temp_dir
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + timeout * nodes
    head = _start_node(
        "head",
        ["--head", "--include-dashboard=false", "--node-ip-address", "127.0.0.1", "--port", str(port)],
        folder,
        environment,
        cpus_per_node if head_cpus is None else head_cpus,
        ray_command,
    )
    cluster = LocalCluster(address=address, temp_dir=folder, head=head, own_temp_dir=own)
    try:
        _wait_for_port(head, port, deadline)
        for index in range(1, nodes):
            cluster.workers.append(
                _start_node(
                    f"worker{index}",
                    ["--address", address, "--node-ip-address", "127.0.0.1"],
                    folder,
                    environment,
                    cpus_per_node,
                    ray_command,
                )
            )
        while time.monotonic() < deadline:
            for node in cluster.nodes:
                if not node.alive():
                    raise ClusterStartError(f"the Ray {node.name} node exited:\n{node.output_tail()}")
            alive = node_cpus(address, environment, timeout=max(5.0, min(60.0, deadline - time.monotonic())))
            if alive is not None and len(alive) >= nodes:
                return cluster
            time.sleep(0.5)
        raise ClusterStartError(f"the Ray cluster at {address} did not have {nodes} alive node(s) in time")
    except BaseException:
        cluster.stop()
        raise
