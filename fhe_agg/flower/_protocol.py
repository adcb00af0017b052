"""Names shared by the server and node sides: message actions and record keys."""

from __future__ import annotations

__all__ = [
    "ACTION_CEREMONY",
    "ACTION_CHALLENGE",
    "ACTION_DECRYPT",
    "ACTION_HELLO",
    "ACTION_SETUP",
    "CEREMONY_STEPS",
    "RECORD",
    "ROUND_RECORD",
    "UPDATE_RECORD",
]

#: The ``ConfigRecord`` every fhe_agg query and reply carries.
RECORD = "fhe"
#: Added to a train message: the round id, weight key and layout the client must use.
ROUND_RECORD = "fhe.round"
#: Replaces the plaintext ``ArrayRecord`` of a train reply: the signed encrypted update.
UPDATE_RECORD = "fhe.update"

ACTION_HELLO = "query.fhe_hello"
ACTION_CEREMONY = "query.fhe_ceremony"
ACTION_SETUP = "query.fhe_setup"
ACTION_CHALLENGE = "query.fhe_challenge"
ACTION_DECRYPT = "query.fhe_decrypt"

#: Ceremony steps in order; the holder answers step ``k`` with the output of phase ``k``.
CEREMONY_STEPS = (
    "seed_commitment",
    "reveal_seed",
    "key_commitment",
    "reveal_public_share",
    "deal",
    "finish",
)
