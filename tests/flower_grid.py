"""An in-process Flower transport for the fhe_agg.flower tests (the transport seam).

``LocalGrid`` hands each message to a node's ``ClientApp`` in this process (each node with its
own state folder under ``state_root``, a new temporary folder by default) and lets a test replace
a node's reply, as a faulty or malicious node would, or look at the instruction the server sent.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from uuid import uuid4

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from fhe_agg.flower._node_state import node_state

Hook = Callable[[Message, Message], Message]  # (instruction, honest reply) -> reply sent


class LocalGrid(Grid):
    """Delivers messages to in-process nodes in node-id order; ``hooks[(action, node)]`` may
    rewrite a node's reply."""

    def __init__(
        self, run_id: int, *, app: ClientApp, nodes: int, state_root: Path | None = None
    ) -> None:
        self.app = app
        if state_root is None:  # removed when the test process exits
            state_root = Path(tempfile.mkdtemp(prefix="fhe-flower-nodes-"))
            atexit.register(shutil.rmtree, state_root, True)
        self.state_root = state_root
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run_id, 0
        self._run = Run.create_empty(run_id)
        self.contexts = {
            9_000 + 17 * i: Context(
                run_id=run_id,
                node_id=9_000 + 17 * i,
                node_config={
                    "partition-id": i,
                    "num-partitions": nodes,
                    "fhe-state-dir": str(self.state_root / f"node-{i}"),
                },
                state=RecordDict(),
                run_config={},
            )
            for i in range(nodes)
        }
        self.hooks: dict[tuple[str, int], Hook] = {}

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        replies = []
        for message in sorted(messages, key=lambda m: m.metadata.dst_node_id):
            message.metadata.__dict__["_message_id"] = uuid4().hex
            node = message.metadata.dst_node_id
            reply = self.app(message, self.contexts[node])
            hook = self.hooks.get((message.metadata.message_type, node))
            replies.append(hook(message, reply) if hook else reply)
        return replies

    def node(self, partition: int) -> int:
        return 9_000 + 17 * partition


def new_run_id() -> int:
    return int.from_bytes(uuid4().bytes[:7], "big")


def share_windows(grid: LocalGrid, holders: int) -> list[bytes]:
    """Six 64-byte pieces of each key share of the first ``holders`` nodes, unsealed from each
    node's state folder (a file holding any of them holds a piece of a share)."""
    windows: list[bytes] = []
    for i in range(holders):
        state = node_state(grid.contexts[grid.node(i)])
        assert state is not None and state.setup is not None
        try:
            found = state.key_share(state.setup.consortium, state.setup.epoch)
            assert found is not None
            raw = found[1].data_level().value.tobytes()
        finally:
            state.close()
        windows += [raw[k : k + 64] for k in range(0, len(raw) - 64, len(raw) // 6)]
    return windows
