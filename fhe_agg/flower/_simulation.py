"""Flower's Simulation Engine with one long-lived process per node instead of Ray.

The engine (``LinkState``, ``InMemoryGrid``, the Fleet worker loop of ``vce_api.run_api``) is
Flower's own; only the backend differs. Flower's Ray backend shares a few actor processes among
all virtual nodes and may run a node's next message in another one, which would separate a key
holder from its share; :class:`NodeProcessBackend` gives each node its own process for the whole
run, so per-node memory behaves as on a real SuperNode host. It needs no Ray.

Internal Flower modules are used (pinned by ``constraints.txt``): a newer flwr may move them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from queue import Empty, Queue
from typing import Any

from flwr.app import Context, Message, RecordDict
from flwr.app.user_config import UserConfig
from flwr.clientapp.client_app import ClientApp, ClientAppException
from flwr.common.constant import RUN_ID_NUM_BYTES, SUPERLINK_NODE_ID, TASK_ID_NUM_BYTES
from flwr.proto.task_pb2 import Task
from flwr.server.superlink.fleet.vce import vce_api
from flwr.server.superlink.fleet.vce.backend.backend import Backend
from flwr.server.superlink.fleet.vce.metrics import VceMetrics
from flwr.server.superlink.linkstate import LinkStateFactory
from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
from flwr.server.superlink.linkstate.utils import generate_rand_int_from_bytes
from flwr.serverapp import ServerApp
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.superlink.federation import NoOpFederationManager
from flwr.superlink.grid import InMemoryGrid

__all__ = ["NodeProcessBackend", "run_simulation"]


class _Worker:
    def __init__(self, client_app: str, env: dict[str, str]) -> None:
        parent, child = socket.socketpair()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fhe_agg.flower._worker", str(child.fileno()), client_app],
            pass_fds=[child.fileno()],
            env=env,
        )
        child.close()
        self.conn = Connection(parent.detach())
        self.lock = threading.Lock()
        self.ready = False

    def call(self, job: object, timeout: float) -> Any:
        with self.lock:
            if not self.ready:
                self._expect("ready", timeout)
                self.ready = True
            self.conn.send(job)
            return self._expect("ok", timeout)

    def _expect(self, status: str, timeout: float) -> Any:
        if not self.conn.poll(timeout):
            raise ClientAppException(f"node process gave no answer within {timeout:.0f} s")
        try:
            kind, payload = self.conn.recv()
        except EOFError:
            raise ClientAppException(f"node process exited (code {self.process.poll()})") from None
        if kind != status:
            raise ClientAppException(str(payload))
        return payload

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.conn.close()


class NodeProcessBackend(Backend):
    """Runs every message of node ``k`` in the ``k``-th of ``num_nodes`` long-lived processes.

    ``client_app`` is an import reference (``"package.module:app"``) the node processes load.
    """

    def __init__(self, client_app: str, *, num_nodes: int, message_timeout: float = 600.0) -> None:
        super().__init__({})
        if num_nodes < 1:
            raise ValueError(f"num_nodes: expected a positive count, got {num_nodes!r}")
        self._client_app = client_app
        self._num_nodes = num_nodes
        self._timeout = message_timeout
        self._spare: list[_Worker] = []
        self._workers: dict[int, _Worker] = {}
        self._guard = threading.Lock()

    def build(self, app_fn: Callable[[], ClientApp]) -> None:
        """Start the node processes (they import the ClientApp while the server sets up)."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self._spare = [_Worker(self._client_app, env) for _ in range(self._num_nodes)]

    @property
    def num_workers(self) -> int:
        return self._num_nodes

    def is_worker_idle(self) -> bool:
        return True

    def _worker(self, node_id: int) -> _Worker:
        with self._guard:
            if node_id not in self._workers:
                if not self._spare:
                    raise ClientAppException(f"no process left for node {node_id}")
                self._workers[node_id] = self._spare.pop()
            return self._workers[node_id]

    def process_message(self, message: Message, context: Context) -> tuple[Message, Context]:
        reply, updated = self._worker(context.node_id).call((message, context), self._timeout)
        return reply, updated

    def terminate(self) -> None:
        for worker in [*self._workers.values(), *self._spare]:
            worker.stop()
        self._workers.clear()
        self._spare.clear()


def run_simulation(
    server_app: ServerApp,
    client_app: str,
    *,
    num_supernodes: int,
    message_timeout: float = 600.0,
) -> Context:
    """Run ``server_app`` against ``num_supernodes`` virtual nodes, each in its own process
    running ``client_app`` (``"module:attribute"``, importable from this ``sys.path``).

    Returns the ServerApp's final context; re-raises the exception that ended it, if any.
    """
    state_factory = LinkStateFactory(
        FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory()
    )
    run = Run.create_empty(run_id=generate_rand_int_from_bytes(RUN_ID_NUM_BYTES))
    run.primary_task_id = generate_rand_int_from_bytes(TASK_ID_NUM_BYTES)
    run.federation_id = NOOP_FEDERATION_ID
    TaskIdentity.task_id, TaskIdentity.run_id = run.primary_task_id, run.run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    state = state_factory.state()
    state.run_ids[run.run_id] = RunRecord(run=run)  # type: ignore[attr-defined]
    state.task_store[run.primary_task_id] = Task(  # type: ignore[attr-defined]
        task_id=run.primary_task_id, run_id=run.run_id
    )
    nodes = vce_api._register_nodes(num_nodes=num_supernodes, state_factory=state_factory)
    stores = vce_api._register_node_info_stores(nodes_mapping=nodes, run=run)
    grid = InMemoryGrid(state_factory=state_factory)
    grid.set_run(run)
    context = Context(
        run_id=run.run_id,
        node_id=0,
        node_config=UserConfig(),
        state=RecordDict(),
        run_config=UserConfig(),
    )
    stop = threading.Event()
    failure: Queue[BaseException] = Queue()

    def serve() -> None:
        try:
            server_app(grid=grid, context=context)
        except BaseException as exc:
            failure.put(exc)
        finally:
            stop.set()

    server = threading.Thread(target=serve, name="fhe_agg-serverapp", daemon=True)
    server.start()
    try:
        vce_api.run_api(
            lambda: ClientApp(),
            lambda: NodeProcessBackend(
                client_app, num_nodes=num_supernodes, message_timeout=message_timeout
            ),
            nodes,
            state_factory,
            stores,
            stop,
            VceMetrics(),
        )
    finally:
        stop.set()
    server.join()
    try:
        raise failure.get_nowait()
    except Empty:
        return context
