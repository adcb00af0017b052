"""Three hospitals, one encrypted weighted average: the README's API example, runnable.

.venv/bin/python examples/quickstart.py
"""

from __future__ import annotations

import numpy as np

from fhe_agg import (
    Aggregator,
    Client,
    FederationConfig,
    KeyHolder,
    Layout,
    SigningKey,
    generate_single_key,
)


def main() -> None:
    config = FederationConfig(min_clients=3, max_clients=16, max_weight=1000.0, value_bound=1.0)
    public_key, key_share = generate_single_key(config.preset)  # stays with the key holder
    keys = {name: SigningKey.generate() for name in ("st-mary", "charite", "karolinska")}
    roster = {name: key.verify_key for name, key in keys.items()}
    layout = Layout.for_vector(10_000)
    rng = np.random.default_rng(0)

    updates, weights = [], []
    with Aggregator(
        config=config, roster=roster, public_key=public_key, round_id=1, layout=layout
    ) as aggregator:
        for weight, (name, key) in enumerate(keys.items(), start=1):
            client = Client(client_id=name, signing_key=key, config=config, public_key=public_key)
            update = rng.uniform(-1, 1, 10_000)
            updates.append(update)
            weights.append(100.0 * weight)
            encrypted = client.encrypt_update(update, round_id=1, weight=weights[-1])
            aggregator.add(encrypted.to_bytes())  # bytes, as they would arrive from the network

        aggregate = aggregator.finalize()
        holder = KeyHolder(
            holder_id="kh-1",
            config=config,
            public_key=public_key,
            key_share=key_share,
            roster=roster,
        )
        evidence = aggregator.evidence(holder.challenge(aggregate))
        mean = holder.decrypt(aggregate, evidence, layout=layout)

    exact = np.average(np.stack(updates), axis=0, weights=weights)
    print(f"clients: {len(updates)}, parameters: {mean.size}")
    print(f"max |encrypted mean - plaintext mean| = {np.max(np.abs(mean - exact)):.3e}")


if __name__ == "__main__":
    main()
