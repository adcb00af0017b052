"""Load: 50 clients x 1e6 parameters streamed through one aggregator in flat memory.

Every client encrypts its own vector (real TenSEAL ciphertexts under a real public key, the
``dp``/``compact`` preset with one unflooded key holder) and signs it with its own ML-DSA key.
The aggregator runs in a child process (:mod:`load_driver`) with a SQLite store, behind an
:class:`~fhe_agg.IngestQueue`; it reads its own peak RSS after 10 and after 50 updates. Updates
are written to disk as they are encrypted and streamed once a backlog has built up, so the
producer offers them faster than the aggregator verifies and adds them: the queue must push
back (:class:`~fhe_agg.Busy`) and stay within its bounds. The finalized round is then resumed
from the store in this process and decrypted against the plaintext weighted mean.
"""

from __future__ import annotations

import hashlib
import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import numpy as np
import pytest

from fhe_agg import (
    PRESETS,
    Client,
    FederationConfig,
    KeyHolder,
    KeyShare,
    Layout,
    PublicKey,
    SeededRandom,
    SigningKey,
    generate_single_key,
)
from fhe_agg.bench._proc import write_message

from . import crash_driver

CLIENTS = 50
PARAMS = 1_000_000
CHECKPOINT = 10  # the first RSS reading, after this many updates
BACKLOG = 20  # updates encrypted before streaming starts: the producer then outruns the aggregator
RSS_GROWTH = 1.10
CONFIG_ARGS = {
    "preset": "compact",
    "min_clients": 10,
    "max_clients": CLIENTS,
    "max_weight": 100.0,
    "value_bound": 1.0,
}
DRIVER = Path(__file__).with_name("load_driver.py")


def _stream(paths: queue.Queue[Path | None], sink: IO[bytes], errors: list[BaseException]) -> None:
    """Send each update file to the aggregator, in order, then delete it; ``None`` ends."""
    try:
        while (path := paths.get()) is not None:
            write_message(sink, path.read_bytes())
            sink.flush()
            path.unlink()
        sink.close()
    except BaseException as exc:  # surfaced by the test (a dead child shows as a broken pipe)
        errors.append(exc)


@pytest.mark.slow
def test_fifty_clients_of_a_million_parameters_in_flat_memory_with_back_pressure(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    args = dict(CONFIG_ARGS)
    config = FederationConfig(
        preset=PRESETS[str(args.pop("preset"))], flooding=None, unsafe_exact_decryption=True, **args
    )
    public_key, share = generate_single_key(config.preset, rng=SeededRandom(50))
    keys = {
        f"client-{i:02d}": SigningKey.from_seed(hashlib.sha256(b"load/%d" % i).digest())
        for i in range(CLIENTS)
    }
    crash_driver.write_setup(
        tmp_path, config_args=CONFIG_ARGS, public_key=public_key,
        roster={cid: key.verify_key for cid, key in keys.items()}, params=PARAMS, round_id=1,
    )  # fmt: skip
    updates, state = tmp_path / "updates", tmp_path / "state"
    store = state / "round.sqlite"
    updates.mkdir()
    state.mkdir()
    try:
        _run(tmp_path, config, public_key, share, keys, store, started)
    finally:  # ~0.8 GB of ciphertexts: not worth keeping among pytest's recent temp dirs
        shutil.rmtree(updates)
        shutil.rmtree(state)


def _run(
    workdir: Path,
    config: FederationConfig,
    public_key: PublicKey,
    share: KeyShare,
    keys: dict[str, SigningKey],
    store: Path,
    started: float,
) -> None:
    roster = {cid: key.verify_key for cid, key in keys.items()}
    updates = workdir / "updates"
    paths: queue.Queue[Path | None] = queue.Queue()
    errors: list[BaseException] = []
    rng = np.random.default_rng(2050)
    weighted_sum, total_weight = np.zeros(PARAMS), 0.0
    encrypt_s = 0.0
    # the aggregator imports and opens its store while the clients encrypt
    command = [sys.executable, str(DRIVER), str(workdir), str(store), str(CHECKPOINT)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as child:
        assert child.stdin is not None and child.stdout is not None
        streamer = threading.Thread(target=_stream, args=(paths, child.stdin, errors), daemon=True)
        try:
            for i, (cid, key) in enumerate(keys.items()):
                vector, weight = rng.uniform(-1.0, 1.0, PARAMS), 1.0 + 1.5 * i
                client = Client(
                    client_id=cid, signing_key=key, config=config, public_key=public_key
                )
                t0 = time.monotonic()
                blob = client.encrypt_update(vector, round_id=1, weight=weight).to_bytes()
                encrypt_s += time.monotonic() - t0
                (updates / f"{i:03d}.bin").write_bytes(blob)
                del blob
                weighted_sum += weight * vector
                total_weight += weight
                paths.put(updates / f"{i:03d}.bin")
                if i + 1 == BACKLOG:
                    streamer.start()
            paths.put(None)
            streamer.join()
            out = child.stdout.read()
        except BaseException:
            paths.put(None)
            child.kill()
            raise
    code = child.returncode
    assert not errors, errors
    assert code == 0, f"load driver exited with {code}"
    figures = json.loads(out)

    # every update counted once; the queue pushed back and held no more than its bounds
    assert figures["accepted"] == CLIENTS and figures["rejected"] == []
    assert figures["accepted_at_checkpoint"] == CHECKPOINT
    assert figures["busy"] >= 1, "the producer never met back-pressure: the test proves nothing"
    assert figures["peak_pending"] <= figures["max_pending"]
    assert figures["peak_pending_bytes"] <= figures["max_pending_bytes"]
    assert figures["peak_pending_bytes"] >= 2 * figures["update_bytes"]  # it did fill up

    # peak RSS of the aggregating process: flat from 10 to 50 clients
    growth = figures["rss_end_mb"] / figures["rss_at_checkpoint_mb"]
    print(
        f"\nload: {CLIENTS} clients x {PARAMS:.0e} params ({figures['update_bytes'] / 1e6:.1f} MB "
        f"per update), aggregator peak RSS {figures['rss_before_mb']:.0f} MiB before the first "
        f"update, {figures['rss_at_checkpoint_mb']:.0f} MiB after {CHECKPOINT}, "
        f"{figures['rss_end_mb']:.0f} MiB after {CLIENTS} (x{growth:.3f}); Busy raised "
        f"{figures['busy']} times; queue peak {figures['peak_pending']} updates / "
        f"{figures['peak_pending_bytes']} of {figures['max_pending_bytes']} bytes; "
        f"encryption {encrypt_s:.1f} s ({encrypt_s / CLIENTS:.2f} s per client), aggregator "
        f"process {figures['seconds']:.1f} s"
    )
    assert growth <= RSS_GROWTH

    # the stored round resumes here, equal to what the child finalized, and decrypts
    with crash_driver.open_aggregator(workdir, store) as resumed:
        assert resumed.finalized and len(resumed.accepted_clients) == CLIENTS
        aggregate = resumed.finalize()
        assert hashlib.sha256(aggregate.to_bytes()).hexdigest() == figures["aggregate_sha256"]
        assert aggregate.total_weight == total_weight
        holder = KeyHolder(
            holder_id="kh", config=config, public_key=public_key, key_share=share,
            roster=roster, spot_check=2,
        )  # fmt: skip
        evidence = resumed.evidence(holder.challenge(aggregate))
        mean = holder.decrypt(aggregate, evidence, layout=Layout.for_vector(PARAMS))
    np.testing.assert_allclose(mean, weighted_sum / total_weight, rtol=0, atol=1e-6)
    print(f"load: whole test {time.monotonic() - started:.1f} s")
