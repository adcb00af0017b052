"""``fhe-agg simulate``'s numeric options, bounded before anything is allocated or generated.

Each refusal is one :class:`click.UsageError` (exit 2) that names the option and its limit:

* ``--holders`` at most :data:`MAX_HOLDERS`, the most members a roster lists;
* ``--clients``, ``--clip`` and ``--noise-multiplier`` as far as the preset's modulus holds the
  largest weighted sum (the simulation weights clients up to ``10 * clients + 5``): the largest
  feasible ``--clients`` is searched and named;
* ``--rounds`` times the ciphertexts per round within the key's decryption budget;
* ``--params`` (with ``--clients`` and ``--rounds``) within the memory this machine has available,
  by the estimate :func:`memory_estimate`.

:func:`run_with_progress` shows the run's progress on stderr, so ``--json`` output piped to a
file or a program stays one clean JSON object on stdout.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import replace
from typing import Any

import click

from fhe_agg.ckks._params import get_preset
from fhe_agg.errors import UnsupportedParameters
from fhe_agg.hazmat import _accel
from fhe_agg.hazmat.zkproof import PROOF_BATCH, proof_size_bound
from fhe_agg.identity._roster_model import MAX_MEMBERS
from fhe_agg.sim._simulate import SimulationSpec, _configure, max_weight

__all__ = ["MAX_HOLDERS", "checked_spec", "memory_estimate", "run_with_progress"]

#: The most key holders a simulation plays: a roster lists at most this many members.
MAX_HOLDERS = MAX_MEMBERS
#: Option of each field name the library's messages start with (``"threshold: ..."``).
_OPTIONS = {
    "clients": "--clients",
    "holders": "--holders",
    "threshold": "--threshold",
    "params": "--params",
    "rounds": "--rounds",
    "clip": "--clip",
    "noise_multiplier": "--noise-multiplier",
    "flooding": "--no-flooding",
    "preset": "--preset",
}
#: :class:`FederationConfig`'s refusals of a sum (or noise) too large for the preset's modulus.
_SIZE_ERRORS = ("bits of scale remain", "beyond any float", "does not fit its")
#: Libraries, keys and interpreter before any vector exists (measured: ~100 MB).
_BASE_BYTES = 150 * 2**20
#: Working set of proving and verifying one batch (masks, responses and commitments of U rows),
#: measured at about 130 MB for N = 8192; with margin.
_PROOF_WORKING_BYTES = 160 * 2**20
#: numba and the compiled kernels when they are in use (``import numba`` alone: ~105 MB).
_KERNEL_BYTES = 160 * 2**20


def _usage(message: str) -> click.UsageError:
    """``name: text`` from the library, as ``--option: text``."""
    name = message.split(":", 1)[0]
    option = _OPTIONS.get(name)
    return click.UsageError(f"{option}{message[len(name) :]}" if option else message)


def memory_estimate(spec: SimulationSpec) -> int:
    """Bytes a run of ``spec`` needs at its peak, from above.

    Peak RSS measured on ``fhe-agg simulate --flooding`` (preset precise, 3 and 12 clients,
    1e5 and 4e5 parameters): ~190 bytes per parameter for the vectors, running sum and
    decryption (about 8 times the wire size of a real), plus each client's update kept as the
    holders' evidence (the wire size, 30 bytes per real for precise), over ~100 MB, plus the
    clients' proofs and one proof's working set, and numba's runtime when the compiled kernels
    are in use. Each round keeps its 8-byte deviations for the
    DP noise measurement.
    """
    fixed, per_client, per_round = _bytes_per_param(spec)
    vectors = spec.params * (fixed + per_client * spec.clients + per_round * spec.rounds)
    kernels = _KERNEL_BYTES if _accel.installed() else 0
    return _BASE_BYTES + kernels + vectors + _proof_bytes(spec)


def _proof_bytes(spec: SimulationSpec) -> int:
    """Every client's well-formedness proofs, kept as the holders' evidence (a fixed size per
    batch of up to ``PROOF_BATCH`` chunks), plus one batch's proving working set."""
    n = get_preset(spec.preset_name).poly_modulus_degree
    batches = math.ceil(math.ceil(spec.params / n) / PROOF_BATCH)
    return _PROOF_WORKING_BYTES + spec.clients * batches * proof_size_bound(n)


def _bytes_per_param(spec: SimulationSpec) -> tuple[int, int, int]:
    """Bytes per parameter: of one round's vectors and sum, per client, per round."""
    wire = get_preset(spec.preset_name).wire_bits_per_real / 8
    return math.ceil(8 * wire), math.ceil(wire + 4), 8


def _available_memory() -> int | None:
    """MemAvailable of ``/proc/meminfo``, else physical memory, else ``None`` (unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _feasible(spec: SimulationSpec, min_clients: int | None) -> bool:
    low = None if min_clients is None else min(min_clients, spec.clients)
    try:
        _configure(spec, [max_weight(spec.clients)], min_clients=low)
    except (UnsupportedParameters, ValueError):
        return False
    return True


def _most_clients(spec: SimulationSpec, min_clients: int | None) -> int:
    """The largest feasible ``clients`` below ``spec.clients`` (0: none), by bisection."""
    low, high = 0, spec.clients  # feasible (0: vacuously), infeasible
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (
            (mid, high) if _feasible(replace(spec, clients=mid), min_clients) else (low, mid)
        )
    return low


def _most_clip(spec: SimulationSpec, min_clients: int | None) -> float:
    """The largest feasible ``clip`` below ``spec.clip`` to 1 %, by bisection of its log."""
    low, high = -1100.0, math.log2(spec.clip)
    while high - low > 0.01:
        mid = (low + high) / 2
        low, high = (
            (mid, high) if _feasible(replace(spec, clip=2**mid), min_clients) else (low, mid)
        )
    return float(2**low)


def _check_config(spec: SimulationSpec, min_clients: int | None) -> Any:
    """The run's :class:`FederationConfig`, or the option that makes it impossible."""
    try:
        return _configure(spec, [max_weight(spec.clients)], min_clients=min_clients)
    except UnsupportedParameters as exc:
        message = str(exc)
        if message.split(":", 1)[0] in _OPTIONS:
            raise _usage(message) from None
        if not any(s in message for s in _SIZE_ERRORS):  # not about the sum's size
            raise click.UsageError(message) from None
        most = _most_clients(spec, min_clients)
        if most >= 1:
            raise click.UsageError(
                f"--clients {spec.clients}: preset {spec.preset_name} holds the weighted sum of "
                f"at most {most} clients in this simulation (weights up to 10 * clients + 5, "
                f"values up to {spec.clip if spec.dp else 1})"
            ) from None
        if spec.dp:
            raise click.UsageError(
                f"--clip {spec.clip} with --noise-multiplier {spec.noise_multiplier}: preset "
                f"{spec.preset_name} holds at most --clip {_most_clip(spec, min_clients):.3g} "
                "there (the clipped sum plus 8 standard deviations of DP noise must fit)"
            ) from None
        raise click.UsageError(f"--preset {spec.preset_name}: {message}") from None
    except ValueError as exc:
        raise _usage(str(exc)) from None


def checked_spec(*, min_clients: int | None = None, **fields: Any) -> SimulationSpec:
    """A :class:`SimulationSpec` of ``fields`` whose run fits the parameters and this machine;
    :class:`click.UsageError` naming the option and its limit otherwise."""
    try:
        spec = SimulationSpec(**fields)
    except ValueError as exc:
        raise _usage(str(exc)) from None
    if spec.holders > MAX_HOLDERS:
        raise click.UsageError(f"--holders {spec.holders}: at most {MAX_HOLDERS}")
    config = _check_config(spec, min_clients)
    chunks = -(-spec.params // config.preset.reals_per_ciphertext)
    budget = config.decryption_budget
    if budget is not None and chunks > budget:
        raise click.UsageError(
            f"--params {spec.params}: one round is {chunks} ciphertexts, beyond the key's "
            f"decryption budget of {budget}; at most {budget * config.preset.reals_per_ciphertext}"
        )
    if budget is not None and spec.rounds * chunks > budget:
        raise click.UsageError(
            f"--rounds {spec.rounds}: {chunks} ciphertext(s) per round at --params {spec.params} "
            f"exceed the key's decryption budget of {budget} ciphertexts after "
            f"{budget // chunks} round(s); at most {budget // chunks}"
        )
    _check_memory(spec)
    return spec


def _check_memory(spec: SimulationSpec) -> None:
    """Refuse a run beyond the memory available. Blamed: ``--clients`` (or ``--rounds``) if one
    client (one round) would fit at this ``--params``, else ``--params``."""
    need, have = memory_estimate(spec), _available_memory()
    if have is None or need <= have:
        return
    gib = f"need about {need / 2**30:.1f} GiB of memory, {have / 2**30:.1f} GiB are available"
    fixed, per_client, per_round = _bytes_per_param(spec)
    room = max(0, have - _BASE_BYTES) // spec.params  # bytes per parameter available
    for option, value, unit, rest in (
        ("--clients", spec.clients, per_client, fixed + per_round * spec.rounds),
        ("--rounds", spec.rounds, per_round, fixed + per_client * spec.clients),
    ):
        if rest + unit <= room:
            raise click.UsageError(
                f"{option} {value}: at --params {spec.params} the run would {gib}; at most "
                f"about {(room - rest) // unit} at this --params"
            )
    per_param = fixed + per_client * spec.clients + per_round * spec.rounds
    raise click.UsageError(
        f"--params {spec.params}: with {spec.clients} client(s) and {spec.rounds} round(s) the "
        f"run would {gib}; at most about {max(0, have - _BASE_BYTES) // per_param} parameters"
    )


class _Lines:
    """Progress as plain ``progress:`` lines on stderr, for a log or CI job (not a terminal):
    the ceremony's start and end, each round's updates at most once a second, each release."""

    def __init__(self, spec: SimulationSpec) -> None:
        self._spec, self._round, self._clients = spec, 1, 0
        self._start = self._last = time.monotonic()

    def __call__(self, phase: str, n: int) -> None:
        spec, now = self._spec, time.monotonic()
        if phase == "ceremony":
            what = "starts" if n == 0 else f"done in {now - self._start:.1f} s"
            self._say(f"key ceremony among {spec.holders} holder(s) {what}")
        elif phase == "clients":
            self._clients += n
            if now - self._last >= 1.0 or self._clients == spec.clients:
                self._say(
                    f"round {self._round}/{spec.rounds}: {self._clients}/{spec.clients} "
                    "updates encrypted and aggregated"
                )
        elif phase == "rounds":
            self._say(f"round {self._round}/{spec.rounds}: decrypted and released")
            self._round, self._clients = self._round + 1, 0

    def _say(self, text: str) -> None:
        self._last = time.monotonic()
        click.echo(f"progress: {text}", err=True)


def run_with_progress(spec: SimulationSpec, show: bool | None, **kwargs: Any) -> dict[str, Any]:
    """:func:`run_simulation` with progress on stderr when ``show`` (``None``: when stderr is a
    terminal): a live bar on a terminal, plain lines otherwise. stdout is never written."""
    from fhe_agg.sim._simulate import run_simulation

    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return run_simulation(spec, **kwargs)
    if not sys.stderr.isatty():
        return run_simulation(spec, progress=_Lines(spec), **kwargs)
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"key ceremony ({spec.holders} holders)", total=None)

        def advance(phase: str, n: int) -> None:
            if phase == "ceremony" and n:
                bar.update(
                    task, description="encrypting and aggregating", total=spec.clients * spec.rounds
                )
            elif phase == "clients":
                bar.advance(task, n)

        return run_simulation(spec, progress=advance, **kwargs)
