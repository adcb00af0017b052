"""One node's state, loaded from its state folder for one message (nothing kept in memory).

:func:`load_node` builds the node's identity (pinned: its roster key file; unpinned: the
identity it made for itself in the folder) and opens its :class:`NodeStore`; the federation
it set up for (public key, configuration, roster), its :class:`~fhe_agg.Client` and its
:class:`~fhe_agg.KeyHolder` (share unsealed from the store) are loaded on first use. The
handler then steps and saves before it returns. ``node.json`` in the folder records how the
identity is loaded (file paths, never a secret), so the mod that encrypts train replies
(:func:`node_state`) loads the same node without the ClientApp's policy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from flwr.app import Context

from fhe_agg._errors import CeremonyError, MalformedMessage
from fhe_agg.ckks._keys import KeyShare, PublicKey
from fhe_agg.client._client import Client
from fhe_agg.flower import _records as rec
from fhe_agg.flower._node_store import NodeStore, state_folder
from fhe_agg.flower._pinned import Pin, PinnedRoster
from fhe_agg.flower._protocol import client_id_of
from fhe_agg.holder._keyholder import KeyHolder
from fhe_agg.identity import (
    Identity,
    Role,
    SealInfo,
    SealingPrivateKey,
    Suite,
    load_identity,
    write_identity,
)
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._signing import SigningKey, VerifyKey
from fhe_agg.protocol._wire import pack, unpack

__all__ = ["NodeState", "Setup", "load_node", "node_state", "share_info"]

_DEV_ID = "node"  # the unpinned node's own identity: node.key in its folder
_DESCRIPTION = "node.json"
_SETUP_KEYS = (
    "federation",
    "public_key",
    "ceremony_id",
    "holders",
    "endorsements",
    "roster",
    "holder_ids",
)


def share_info(consortium: str, epoch: int, holder_id: str, ceremony_id: bytes) -> SealInfo:
    """What a key share sealed at rest is bound to."""
    return SealInfo(
        consortium=consortium,
        epoch=epoch,
        sender=holder_id,
        recipient=holder_id,
        purpose=f"key-share-at-rest/{ceremony_id.hex()}",
    )


@dataclass(frozen=True, eq=False)
class Setup:
    """The federation a node accepted at setup (all public)."""

    consortium: str
    epoch: int
    config: FederationConfig
    clip: float | None
    public_key: PublicKey
    ceremony_id: bytes
    holders: dict[str, VerifyKey]
    order: tuple[str, ...]  # holder ids in ceremony order (index 1..n)
    roster: dict[str, VerifyKey]

    def to_bytes(self) -> bytes:
        return pack(
            "node-setup",
            {
                "consortium": self.consortium,
                "epoch": self.epoch,
                "federation": rec.encode_config(self.config, clip=self.clip),
                "public_key": self.public_key.blob,
                "ceremony_id": self.ceremony_id,
                "holders": rec.encode_roster(self.holders),
                "order": list(self.order),
                "roster": rec.encode_roster(self.roster),
            },
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Setup:
        f = unpack(
            data, "node-setup", max_bytes=1 << 28, max_bin=1 << 27, max_array=rec.MAX_HOLDERS
        )
        config, clip = rec.decode_config(f.blob("federation"))
        order = f.items("order", max_len=rec.MAX_HOLDERS)
        if not all(isinstance(h, str) for h in order):
            raise MalformedMessage("node setup: holder order is not a list of ids")
        return cls(
            consortium=f.text("consortium", max_len=255),
            epoch=f.integer("epoch"),
            config=config,
            clip=clip,
            public_key=PublicKey.from_bytes(config.preset, f.blob("public_key")),
            ceremony_id=f.blob("ceremony_id", size=32),
            holders=rec.decode_roster(f.blob("holders"), max_members=rec.MAX_HOLDERS),
            order=tuple(order),
            roster=rec.decode_roster(f.blob("roster"), max_members=rec.MAX_NODES),
        )


@dataclass(eq=False)
class NodeState:
    """One node as loaded for one message. Its repr shows no key material."""

    client_id: str
    signing_key: SigningKey
    sealing_key: SealingPrivateKey | None
    store: NodeStore
    pin: Pin | None = None

    @property
    def is_holder(self) -> bool:
        return self.sealing_key is not None

    @property
    def sends_updates(self) -> bool:
        """Unpinned, every node trains; pinned, only roster clients (holders only decrypt)."""
        return self.pin is None or not self.pin.is_holder

    @cached_property
    def setup(self) -> Setup | None:
        """The federation this node set up for last (``None`` before any setup)."""
        current = self.store.current()
        if current is None:
            return None
        blob = self.store.get(*current, "setup")
        return None if blob is None else Setup.from_bytes(blob)

    @cached_property
    def client(self) -> Client | None:
        setup = self.setup
        if setup is None:
            return None
        return Client(
            client_id=self.client_id,
            signing_key=self.signing_key,
            config=setup.config,
            public_key=setup.public_key,
            holder_keys={i: setup.holders[h] for i, h in enumerate(setup.order, start=1)},
            state=self.store.file("client", setup.consortium, setup.epoch),
        )

    def key_share(self, consortium: str, epoch: int) -> tuple[PublicKey, KeyShare, bytes] | None:
        """The joint key, this holder's share (unsealed) and the ceremony id, if it has one."""
        spec_blob = self.store.get(consortium, epoch, "spec")
        sealed = self.store.get(consortium, epoch, "share")
        key_blob = self.store.get(consortium, epoch, "public-key")
        if spec_blob is None or sealed is None or key_blob is None or self.sealing_key is None:
            return None
        spec, _ = rec.decode_spec(spec_blob)
        info = share_info(consortium, epoch, self.client_id, spec.ceremony_id)
        share = KeyShare.unseal(sealed, self.sealing_key, info=info, preset=spec.preset)
        return PublicKey.from_bytes(spec.preset, key_blob), share, spec.ceremony_id

    @cached_property
    def key_holder(self) -> KeyHolder | None:
        setup = self.setup
        if setup is None or not self.is_holder:
            return None
        found = self.key_share(setup.consortium, setup.epoch)
        if found is None:
            raise CeremonyError(f"{self.client_id} holds no key share for this federation")
        public_key, share, _ = found
        return KeyHolder(
            holder_id=self.client_id,
            config=setup.config,
            public_key=public_key,
            key_share=share,
            roster=setup.roster,
            signing_key=self.signing_key,
            store=self.store.file("holder", setup.consortium, setup.epoch),
        )

    def close(self) -> None:
        """Close the stores this message opened (node, client memory, decryption log)."""
        for name in ("client", "key_holder"):
            opened = self.__dict__.get(name)
            if opened is not None:
                opened.close()
        self.store.close()

    def __repr__(self) -> str:
        role = "holder" if self.is_holder else "client"
        return f"NodeState({self.client_id!r}, {role})"


def _dev_identity(folder: Path, holder: bool) -> Identity:
    """The unpinned node's own identity, made once in its folder (development mode)."""
    path = folder / f"{_DEV_ID}.key"
    if path.exists():
        return load_identity(path)
    identity = Identity.generate(
        id=_DEV_ID, role=Role.HOLDER if holder else Role.CLIENT, suite=Suite.PQ_ONLY
    )
    write_identity(identity, folder)
    return identity


def load_node(context: Context, *, holder: bool, pinned: PinnedRoster | None) -> NodeState:
    """The node's state for this message; writes ``node.json`` (how to load it again)."""
    folder = state_folder(context)
    _describe(folder, holder, pinned)
    return _load(context, folder, holder, pinned)


def _load(context: Context, folder: Path, holder: bool, pinned: PinnedRoster | None) -> NodeState:
    if pinned is None:
        identity = _dev_identity(folder, holder)
        client_id = client_id_of(context.node_id)
        sealing = identity.sealing_key if holder else None
        return NodeState(
            client_id, identity.update_signing_key(), sealing, NodeStore(folder, client_id)
        )
    pin = Pin.load(pinned, memo=folder)
    identity = pin.identity
    sealing = identity.sealing_key if pin.is_holder else None
    store = NodeStore(folder, identity.id)
    return NodeState(identity.id, pin.signing_key, sealing, store, pin=pin)


def _describe(folder: Path, holder: bool, pinned: PinnedRoster | None) -> None:
    files = None
    if pinned is not None:
        files = {
            "roster": str(pinned.roster),
            "admin_public": str(pinned.admin_public),
            "key": str(pinned.key),
            "passphrase_file": None
            if pinned.passphrase_file is None
            else str(pinned.passphrase_file),
            "passphrase_in_memory": pinned.passphrase is not None
            and pinned.passphrase_file is None,
        }
    text = json.dumps({"holder": holder, "pinned": files}, sort_keys=True)
    path = folder / _DESCRIPTION
    if path.exists() and path.read_text() == text:
        return
    tmp = folder / f".{_DESCRIPTION}.{os.getpid()}"
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)


def node_state(context: Context) -> NodeState | None:
    """The node's state as its last hello described it (``None`` before any hello)."""
    folder = state_folder(context)
    path = folder / _DESCRIPTION
    if not path.exists():
        return None
    described = json.loads(path.read_text())
    files = described.get("pinned")
    pinned = None
    if files is not None:
        if files.get("passphrase_in_memory"):
            raise CeremonyError(
                "this pinned node's passphrase was given in memory; give it as a file "
                "(PinnedRoster(passphrase_file=...)) so every message can load the identity"
            )
        pinned = PinnedRoster(
            roster=Path(files["roster"]),
            admin_public=Path(files["admin_public"]),
            key=Path(files["key"]),
            passphrase_file=None
            if files["passphrase_file"] is None
            else Path(files["passphrase_file"]),
        )
    return _load(context, folder, bool(described.get("holder")), pinned)
