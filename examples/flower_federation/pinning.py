"""The example's consortium on disk: an admin-signed roster and one key file per node.

``run.py`` writes them (into a temporary directory unless ``--roster-dir`` names one) before
the federation starts, as ``fhe-agg keys new`` and ``fhe-agg roster new`` would; each node then
loads the roster, the admin's public identity and its own key file (``pinned_files``) and checks
every directory the server relays against the roster. In pinned mode the first ``holders``
nodes are key holders (they only decrypt) and the others are the clients that train.
"""

from __future__ import annotations

from pathlib import Path

from fhe_agg.flower import PinnedRoster
from fhe_agg.identity import Identity, Role, Roster, Suite, write_identity

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
        write_identity(member, directory)
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
    """What node ``partition`` is given: the roster, the admin's public file, its key."""
    return PinnedRoster(
        roster=directory / ROSTER_FILE,
        admin_public=directory / f"{ADMIN}.pub.json",
        key=directory / f"{member_of(partition, holders)}.key",
    )
