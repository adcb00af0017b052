"""Kill tests: an aggregator SIGKILLed at random points of a round, and a key holder SIGKILLed
right after a partial decryption, resume with every update counted exactly once and every
refusal intact.

The aggregator runs :mod:`crash_driver` in a child process. Children are forked from this test
process, which has fhe_agg imported already: a fresh interpreter spends seconds importing it,
and the point is many kills, not many imports. One run also executes the driver as a script,
killed mid-round, to show it stands alone.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from fhe_agg import (
    PRESETS,
    Aggregator,
    AlreadyDecrypted,
    Client,
    EncryptedAggregate,
    FederationConfig,
    KeyHolder,
    Layout,
    SeededRandom,
    SigningKey,
    generate_single_key,
)

from . import crash_driver

CLIENTS = 10
PARAMS = 10_000  # two ciphertexts per update with the compact preset
KILLS_WANTED = 24
CONFIG_ARGS = {
    "preset": "compact",
    "min_clients": 8,
    "max_clients": 16,
    "max_weight": 100.0,
    "value_bound": 4.0,
}


@dataclass
class Setup:
    workdir: Path
    config: FederationConfig
    holder: KeyHolder
    layout: Layout
    expected_mean: np.ndarray


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """Ten clients' updates of round 1 as wire files, with distinct weights and values."""
    workdir = tmp_path_factory.mktemp("crash")
    args = dict(CONFIG_ARGS)
    config = FederationConfig(
        preset=PRESETS[str(args.pop("preset"))], flooding=None, unsafe_exact_decryption=True, **args
    )
    public_key, share = generate_single_key(config.preset, rng=SeededRandom(2026))
    keys = {f"client-{i:02d}": SigningKey.generate() for i in range(CLIENTS)}
    roster = {cid: key.verify_key for cid, key in keys.items()}
    rng = np.random.default_rng(77)
    vectors, weights = [], []
    (workdir / "updates").mkdir()
    for i, (cid, key) in enumerate(keys.items()):
        client = Client(client_id=cid, signing_key=key, config=config, public_key=public_key)
        vector, weight = rng.uniform(-1, 1, PARAMS), 1.0 + 3.5 * i
        update = client.encrypt_update(vector, round_id=1, weight=weight)
        (workdir / "updates" / f"{cid}.bin").write_bytes(update.to_bytes())
        vectors.append(vector)
        weights.append(weight)
    crash_driver.write_setup(
        workdir,
        config_args=CONFIG_ARGS,
        public_key=public_key,
        roster=roster,
        params=PARAMS,
        round_id=1,
    )
    # The children are forked from this process: verifying every proof here once puts it in
    # this process's memo of verified proofs (fhe_agg.protocol._wellformed), which each child inherits, so
    # a child's time goes to the round and its kills rather than to re-verifying ten proofs.
    with Aggregator(
        config=config,
        roster=roster,
        public_key=public_key,
        round_id=1,
        layout=Layout.for_vector(PARAMS),
    ) as warm:
        for path in sorted((workdir / "updates").glob("*.bin")):
            warm.add(path.read_bytes())
    holder = KeyHolder(
        holder_id="kh", config=config, public_key=public_key, key_share=share, roster=roster
    )
    mean = np.average(np.stack(vectors), axis=0, weights=weights)
    return Setup(workdir, config, holder, Layout.for_vector(PARAMS), mean)


def _fork(target: Callable[[int], None]) -> tuple[int, int]:
    """Run ``target(write_fd)`` in a forked child that never returns into pytest."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            target(write_fd)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _drain(fd: int) -> list[str]:
    chunks = []
    while data := os.read(fd, 65536):
        chunks.append(data)
    os.close(fd)
    return b"".join(chunks).decode().splitlines()


@dataclass
class Run:
    lines: list[str]
    killed: bool

    @property
    def opened(self) -> int | None:
        """How many updates the store held when this run opened it (None: killed before)."""
        heads = [line.split() for line in self.lines if line.startswith("open ")]
        return int(heads[0][1]) if heads else None

    @property
    def was_finalized(self) -> bool:
        return any(line.startswith("open ") and line.endswith(" 1") for line in self.lines)

    def names(self, verb: str) -> list[str]:
        return [line.split()[1] for line in self.lines if line.startswith(verb + " ")]

    @property
    def inside_add(self) -> bool:
        return bool(self.lines) and self.lines[-1].startswith("begin ")


def _run_driver(setup: Setup, store: Path, out: Path, delay: float | None) -> Run:
    pid, fd = _fork(lambda w: crash_driver.run(setup.workdir, store, out, fd=w))
    if delay is not None:
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)  # a zombie that already exited ignores it
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status)
    assert killed or os.WEXITSTATUS(status) == 0, "the driver failed (traceback above)"
    return Run(_drain(fd), killed)


def _check_resume(run: Run, committed: int, maybe_one_more: bool, names: list[str]) -> None:
    """Every add() that returned survived the kill; one cut inside add() may or may not have
    committed; the restored updates, and only they, are refused as duplicates."""
    if run.opened is None:
        return
    assert run.opened in {committed, committed + int(maybe_one_more)}, run.lines
    if run.was_finalized:  # killed inside finalize(), after its commit: nothing is re-sent
        assert run.opened == len(names) and not run.names("begin"), run.lines
        return
    outcomes = [line.split() for line in run.lines if line.startswith(("duplicate ", "added "))]
    for i, (verb, name) in enumerate(outcomes):  # in order: restored ones refused, then new
        assert (verb, name) == ("duplicate" if i < run.opened else "added", names[i]), run.lines


def test_aggregator_killed_at_random_points_counts_every_update_once(
    setup: Setup, tmp_path: Path
) -> None:
    names = sorted(p.stem for p in (setup.workdir / "updates").glob("*.bin"))
    started = time.monotonic()
    reference = _run_driver(setup, tmp_path / "reference.sqlite", tmp_path / "ref.bin", None)
    duration = time.monotonic() - started
    assert reference.names("added") == names and reference.lines[-1] == "done"
    expected = (tmp_path / "ref.bin").read_bytes()

    rng = random.Random(20260509)
    mid_round = inside_add = landed = early = late = 0
    trial = 0
    # bounded in time, scaled by one uninterrupted round measured on this machine under its load
    budget = max(120.0, 60.0 * duration)
    while mid_round < KILLS_WANTED:
        spent = time.monotonic() - started
        assert spent < budget, f"only {mid_round} mid-round kills in {spent:.0f} s"
        trial += 1
        store, out = tmp_path / f"trial-{trial}.sqlite", tmp_path / f"trial-{trial}.bin"
        committed, maybe_one_more = 0, False
        for attempt in range(13):  # the last attempt is not killed
            left = max(0.3, (len(names) - committed) / len(names))  # aim at what is left
            delay = None if attempt == 12 else rng.uniform(0.0, 1.1 * duration * left)
            run = _run_driver(setup, store, out, delay)
            _check_resume(run, committed, maybe_one_more, names)
            if run.opened is not None:
                if maybe_one_more:
                    landed += run.opened - committed
                committed = run.opened + len(run.names("added"))
                maybe_one_more = run.inside_add
            if not run.killed or "done" in run.lines:
                late += run.killed
                break
            if run.opened is None:
                early += 1  # killed while forking or opening the store
            else:
                mid_round += 1
                inside_add += run.inside_add
        else:
            pytest.fail("the round never completed")
        assert out.read_bytes() == expected  # the whole aggregate, bit for bit
    print(
        f"\n{mid_round} mid-round kills over {trial} rounds, {inside_add} inside add() "
        f"({landed} of those had committed), {early} before the store was open, {late} after "
        f"the round was done; reference round {duration * 1e3:.0f} ms"
    )
    assert inside_add >= 3  # kills did land inside the commit path, not only between adds

    with Aggregator(
        config=setup.config,
        roster=setup.holder.roster,
        public_key=setup.holder.public_key,
        round_id=1,
        layout=setup.layout,
        store=tmp_path / f"trial-{trial}.sqlite",
    ) as resumed:
        assert resumed.finalized and list(resumed.accepted_clients) == names
        aggregate = resumed.finalize()
        evidence = resumed.evidence(setup.holder.challenge(aggregate))
        mean = setup.holder.decrypt(aggregate, evidence, layout=setup.layout)
    np.testing.assert_allclose(mean, setup.expected_mean, rtol=0, atol=1e-6)


def test_the_driver_runs_as_a_script_and_survives_a_kill(setup: Setup, tmp_path: Path) -> None:
    store, out = tmp_path / "script.sqlite", tmp_path / "script.bin"
    script = Path(crash_driver.__file__)
    command = [sys.executable, str(script), str(setup.workdir), str(store), str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline().decode()  # after the (slow) imports
    assert first.startswith("open 0 ")
    second = proc.stdout.readline().decode()
    assert second.startswith("begin ")
    # kill as soon as one add has returned: a fixed sleep let a fast machine finish the round
    assert proc.stdout.readline().decode().startswith("added ")
    proc.kill()
    proc.wait()
    rest = proc.stdout.read().decode().splitlines()
    proc.stdout.close()
    added = sum(line.startswith("added ") for line in rest)
    assert "done" not in rest
    run = _run_driver(setup, store, out, None)
    assert run.opened is not None and run.opened >= added
    reference = _run_driver(setup, tmp_path / "ref.sqlite", tmp_path / "ref.bin", None)
    assert reference.lines[-1] == "done"
    assert out.read_bytes() == (tmp_path / "ref.bin").read_bytes()


def test_key_holder_killed_right_after_a_partial_refuses_a_second(
    make_aggregator, updates, config, keypair, roster, layout, tmp_path
) -> None:
    agg = make_aggregator()
    for cid in ("alpha", "bravo", "charlie"):
        agg.add(updates[cid])
    aggregate: EncryptedAggregate = agg.finalize()
    store = tmp_path / "keyholder-kh.sqlite"

    def holder() -> KeyHolder:
        public_key, share = keypair
        args = {"config": config, "public_key": public_key, "roster": roster}
        return KeyHolder(holder_id="kh", key_share=share, store=store, **args)

    def child(fd: int) -> None:
        h = holder()
        partial = h.partial_decrypt(aggregate, agg.evidence(h.challenge(aggregate)), layout=layout)
        os.write(fd, json.dumps({"chunks": int(partial.data.shape[0])}).encode() + b"\n")
        time.sleep(60)  # killed here: no close(), no clean shutdown

    pid, fd = _fork(child)
    line = b""
    while not line.endswith(b"\n"):
        data = os.read(fd, 4096)
        assert data, "the holder exited before its partial"
        line += data
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.WIFSIGNALED(status)
    assert json.loads(line)["chunks"] == len(aggregate.chunks)

    restarted = holder()
    assert restarted.budget_left == config.decryption_budget - len(aggregate.chunks)
    with pytest.raises(AlreadyDecrypted):
        restarted.partial_decrypt(
            aggregate, agg.evidence(restarted.challenge(aggregate)), layout=layout
        )
    assert restarted.budget_left == config.decryption_budget - len(aggregate.chunks)
    restarted.close()
