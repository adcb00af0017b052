"""The example's consortium on disk: an admin-signed roster and one key file per node.

``python pinning.py DIR`` (or ``run.py``) writes them before the federation starts, as
``fhe-agg keys new-secret``, ``fhe-agg keys new`` and ``fhe-agg roster new`` would: each member's
key file is sealed under a generated key secret kept in ``<member>.secret`` beside it (a site keeps
it on other storage, e.g. a secrets mount: whoever reads both files has the key). A node unlocks
its key file at every message, so a machine-generated 256-bit secret (HKDF, about a millisecond)
stands where a person's passphrase (scrypt, ~0.08 s per unlock) would. Each node then loads the
roster, the admin's public identity and its own key file (``pinned_files``) at every message and
checks every directory the server relays against the roster. The first ``holders`` nodes are key
holders (they only decrypt), the others the clients.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fhe_agg.flower import PinnedRoster
from fhe_agg.identity import Identity, Role, Roster, Suite, write_identity, write_key_secret

CONSORTIUM = "flower-example"
ROSTER_FILE = "roster.json"
ADMIN = "admin"


def member_of(partition: int, holders: int) -> str:
    """The roster member that node ``partition`` plays: holders first, then clients."""
    return f"holder-{partition + 1}" if partition < holders else f"client-{partition - holders}"


def write_consortium(
    directory: Path, *, clients: int, holders: int, threshold: int, min_clients: int, preset: str
) -> Roster:
    """Key files for the admin and every member, and the roster the admin signs."""
    admin = Identity.generate(id=ADMIN, role=Role.ADMIN, suite=Suite.PQ_ONLY)
    write_identity(admin, directory)
    members = []
    for partition in range(holders + clients):
        role = Role.HOLDER if partition < holders else Role.CLIENT
        member = Identity.generate(id=member_of(partition, holders), role=role, suite=Suite.PQ_ONLY)
        secret = write_key_secret(directory / f"{member.id}.secret")  # 0600
        write_identity(member, directory, passphrase=secret)
        members.append(member.public)
    roster = Roster.create(
        consortium=CONSORTIUM,
        admin=admin,
        members=members,
        preset=preset,
        min_clients=min_clients,
        threshold=threshold,
    )
    roster.save(directory / ROSTER_FILE)
    return roster


def pinned_files(directory: Path, partition: int, holders: int) -> PinnedRoster:
    """What node ``partition`` is given: the roster, the admin's public file, its key and the
    key secret that unlocks it."""
    return PinnedRoster(
        roster=directory / ROSTER_FILE,
        admin_public=directory / f"{ADMIN}.pub.json",
        key=directory / f"{member_of(partition, holders)}.key",
        passphrase_file=directory / f"{member_of(partition, holders)}.secret",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write the example's roster and key files.")
    parser.add_argument("directory", type=Path, help="a new directory")
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--holders", type=int, default=3)
    parser.add_argument("--threshold", type=int, default=2)
    args = parser.parse_args()
    write_consortium(
        args.directory,
        clients=args.clients,
        holders=args.holders,
        threshold=args.threshold,
        min_clients=min(3, args.clients),
        preset="precise",
    )
    print(args.directory)
