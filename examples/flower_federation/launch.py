"""Start Flower's own processes on 127.0.0.1 for this App, and stop every one of them by pid.

``run.py`` and the deployment test use it: a ``flower-superlink`` (``--simulation`` for the
Simulation Engine), ``flower-supernode`` processes each with its own state folder, a
``FLWR_HOME`` whose ``config.toml`` names the SuperLink connection, ``flwr supernode register``
and ``flwr run``. With a :class:`certs.TlsFiles` every connection is TLS (the SuperLink's
``--ssl-*``, the SuperNodes' ``--root-certificates``, the connection's ``root-certificates``);
with ``node_auth`` the SuperLink admits only SuperNodes whose public key was registered, each
SuperNode signing with its ``--auth-supernode-private-key``. Without them, ``--insecure``.
Every process started is recorded in a :class:`Processes`, whose ``stop`` (also on error, as a
context manager) terminates each by its pid, then kills what is still alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from certs import TlsFiles

APP = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value + "'"
    return str(value)


def config_args(values: dict[str, Any]) -> str:
    """``k1=v1 k2=v2`` for ``--run-config`` / ``--node-config`` (TOML values)."""
    return " ".join(f"{k}={_toml(v)}" for k, v in values.items())


class Processes:
    """The processes this launcher started; :meth:`stop` ends each by its pid, with whatever it
    started in turn (a SuperLink's or SuperNode's ``flower-superexec`` and ``flwr-clientapp``).

    Each starts in a session of its own, so its process group is its pid: ``stop`` signals the
    group (SIGTERM, then SIGKILL to what is left after 10 s), so no orphaned ``flwr-clientapp``
    runs on after a run or a test."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self._groups: list[int] = []  # every group started, killed ones included

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        self.running[name] = process
        self._groups.append(process.pid)
        return process

    @property
    def groups(self) -> tuple[int, ...]:
        """The process group (the pid) of every process started, killed ones included."""
        return tuple(self._groups)

    def kill(self, name: str) -> None:
        """SIGKILL one process (as a crash would) and wait for it; what it started is left
        running, as after a crash, until :meth:`stop`."""
        process = self.running.pop(name)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        for group in self._groups:
            _signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.running.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        # what the processes started (orphans now) gets the rest of the 10 s, then SIGKILL
        while any(_signal_group(g, 0) for g in self._groups) and time.monotonic() < deadline:
            time.sleep(0.05)
        for group in self._groups:
            _signal_group(group, signal.SIGKILL)
        for process in self.running.values():
            process.wait(timeout=30)
        self.running.clear()
        self._groups.clear()

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def flower_processes() -> list[str]:
    """The Flower processes alive on this machine (``flower-*``, ``flwr-*`` by their command
    names in ``/proc``; none where there is no ``/proc``), as ``"pid name"``."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            name = comm.read_text().strip()
        except OSError:  # gone meanwhile
            continue
        if name.startswith(("flower-", "flwr-")):
            found.append(f"{comm.parent.name} {name}")
    return found


def group_alive(group: int) -> bool:
    """Whether any process of process group ``group`` is alive."""
    return _signal_group(group, 0)


def _signal_group(group: int, sig: int) -> bool:
    """Send ``sig`` to process group ``group`` (0: only ask); whether any process of it lives."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    return True


def environment(
    home: Path, connection: str, port: int, *, tls: TlsFiles | None = None
) -> dict[str, str]:
    """The environment of every process: FLWR_HOME with one SuperLink connection (TLS checked
    against ``tls.ca``, or insecure without ``tls``), no telemetry."""
    home.mkdir(parents=True, exist_ok=True)
    security = "insecure = true" if tls is None else f'root-certificates = "{tls.ca.resolve()}"'
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "{connection}"\n\n'
        f'[superlink.{connection}]\naddress = "127.0.0.1:{port}"\n{security}\n'
    )
    env = dict(os.environ, FLWR_HOME=str(home), FLWR_TELEMETRY_ENABLED="0")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def start_superlink(
    procs: Processes,
    env: dict[str, str],
    port: int,
    database: Path,
    *,
    simulation: bool,
    tls: TlsFiles | None = None,
    node_auth: bool = False,
) -> None:
    """The SuperLink on 127.0.0.1:``port`` (Fleet, Control and Runtime API on the one port)."""
    if tls is None:
        security = ["--insecure"]
    else:
        security = ["--ssl-ca-certfile", str(tls.ca), "--ssl-certfile", str(tls.cert)]
        security += ["--ssl-keyfile", str(tls.key)]
    if node_auth:
        security.append("--enable-supernode-auth")
    argv = [
        str(BIN / "flower-superlink"),
        *security,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--database",
        str(database),
        "--disable-runtime-dependency-installation",
    ]
    procs.start("superlink", [*argv, "--simulation"] if simulation else argv, env)
    _wait_for_port(port, procs.running["superlink"])


def start_supernode(
    procs: Processes,
    env: dict[str, str],
    name: str,
    superlink: int,
    node_config: dict[str, Any],
    *,
    tls: TlsFiles | None = None,
    auth_key: Path | None = None,
    max_wait: float | None = None,
) -> int:
    """A SuperNode connected to the SuperLink's port (checking its certificate against
    ``tls.ca``; signing with ``auth_key`` if given; giving up after ``max_wait`` s without a
    connection); returns its own Runtime API port (on 127.0.0.1, where its ``flwr-clientapp``
    processes fetch their messages: behind TLS too, with the same certificate, if ``tls``)."""
    port = free_port()
    security = ["--insecure"] if tls is None else ["--root-certificates", str(tls.ca)]
    if tls is not None:
        security += ["--ssl-certfile", str(tls.cert), "--ssl-keyfile", str(tls.key)]
        security += ["--ssl-ca-certfile", str(tls.ca)]
    if auth_key is not None:
        security += ["--auth-supernode-private-key", str(auth_key)]
    if max_wait is not None:
        security += ["--max-wait-time", str(max_wait)]
    argv = [
        str(BIN / "flower-supernode"),
        *security,
        "--superlink",
        f"127.0.0.1:{superlink}",
        "--port",
        str(port),
        "--node-config",
        config_args(node_config),
    ]
    procs.start(name, argv, env)
    return port


def _flwr_json(env: dict[str, str], what: str, argv: list[str]) -> Any:
    """Run ``flwr <argv> --format json`` and return its JSON output; ``RuntimeError`` naming
    ``what`` if it fails or prints none."""
    argv = [str(BIN / "flwr"), *argv, "--format", "json"]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, cwd=APP)
    out = done.stdout[done.stdout.find("{") :]
    if done.returncode != 0 or not out:
        raise RuntimeError(f"flwr {what}: {done.stdout}{done.stderr}")
    return json.loads(out)


def register_supernode(env: dict[str, str], connection: str, public_key: Path, name: str) -> int:
    """``flwr supernode register``: the SuperLink admits the SuperNode holding the private half
    of ``public_key`` (OpenSSH, NIST curve) from now on; returns the node id it will have."""
    argv = ["supernode", "register", str(public_key), connection, "--name", name]
    return int(_flwr_json(env, f"supernode register {name}", argv)["node-id"])


def list_supernodes(env: dict[str, str], connection: str) -> dict[int, str]:
    """``flwr supernode ls``: every registered node id with its status (``online``, ...)."""
    found = _flwr_json(env, "supernode ls", ["supernode", "ls", connection])
    return {int(n["node-id"]): str(n["status"]) for n in found["nodes"]}


def wait_for_status(
    env: dict[str, str], connection: str, node_id: int, status: str, *, timeout: float
) -> float:
    """Poll ``flwr supernode ls`` until node ``node_id`` has ``status``; the seconds waited.

    A SuperNode killed without a goodbye stays ``online`` on the SuperLink until two heartbeat
    intervals (2 x 30 s in flwr 1.42) pass without a heartbeat, and with SuperNode
    authentication the SuperLink refuses to activate the same node id again until then."""
    t0 = time.monotonic()
    while (now := list_supernodes(env, connection).get(node_id)) != status:
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"node {node_id} is {now!r}, not {status!r}, after {timeout:.0f} s")
        time.sleep(2.0)
    return time.monotonic() - t0


def flwr_run(
    env: dict[str, str],
    connection: str,
    run_config: dict[str, Any],
    *,
    timeout: float,
    federation_config: str | None = None,
    log: Path,
) -> int:
    """``flwr run . <connection> --stream`` for this App; its exit code."""
    argv = [str(BIN / "flwr"), "run", str(APP), connection, "--stream"]
    argv += ["--run-config", config_args(run_config)]
    if federation_config:
        argv += ["--federation-config", federation_config]
    with log.open("ab") as out:
        return subprocess.run(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=timeout, cwd=APP
        ).returncode


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process on port {port} exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")
