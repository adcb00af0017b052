"""Reproducible fhe_agg benchmarks: every figure next to its baseline, measured in the same run.

    python benchmarks/run.py [--quick] [--json] [--params N] [--repeats R]

Writes ``benchmarks/results/<date>.json`` and ``<date>.md``. Each figure carries ``ours``,
``baseline``, ``ratio`` (ours / baseline) and the unit; medians over ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi

from fhe_agg import Client, FederationConfig, SigningKey, generate_single_key
from fhe_agg._params import PRESETS
from fhe_agg._seal import backend_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from threshold_bench import bench_threshold_decryption

RESULTS = Path(__file__).resolve().parent / "results"


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _figure(
    name: str, unit: str, ours: float, baseline: float, baseline_name: str, higher_is_better: bool
) -> dict[str, Any]:
    return {
        "figure": name,
        "unit": unit,
        "ours": ours,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": ours / baseline if baseline else float("nan"),
        "higher_is_better": higher_is_better,
    }


def _bench_client() -> Client:
    """A client at the DP (compact) preset, the one whose ciphertexts travel in DP runs."""
    config = FederationConfig(
        preset=PRESETS["dp"], max_clients=16, max_weight=100.0, value_bound=1.0, flooding=None
    )
    public_key, _ = generate_single_key(config.preset)
    return Client(
        client_id="bench", signing_key=SigningKey.generate(), config=config, public_key=public_key
    )


def bench_client_encryption(params: int, repeats: int) -> list[dict[str, Any]]:
    """Client encode+encrypt throughput (params/s on one core) vs raw TenSEAL and raw SEAL."""
    rng = np.random.default_rng(0)
    vector = rng.uniform(-1, 1, params)
    client = _bench_client()
    config = client.config
    ours = params / _median_seconds(lambda: client.encrypt_chunks(vector * 3.0), repeats)

    # Raw sealapi at our preset, one real per slot as a plain SEAL user would do (no packing, no signing)
    backend = backend_for(config.preset)
    keygen = sealapi.KeyGenerator(backend.context)
    seal_pk = sealapi.PublicKey()
    keygen.create_public_key(seal_pk)
    encryptor = sealapi.Encryptor(backend.context, seal_pk)
    slots = backend.n // 2

    def raw_seal() -> None:
        plain, cipher = sealapi.Plaintext(), sealapi.Ciphertext()
        for start in range(0, params, slots):
            backend.encoder.encode(vector[start : start + slots].tolist(), config.scale, plain)
            encryptor.encrypt(plain, cipher)
            backend.save(cipher)

    raw_seal_rate = params / _median_seconds(raw_seal, repeats)

    # NVIDIA FLARE's TenSEAL parameters: N=8192, [60, 40, 40], scale 2**40, one CKKSVector
    context = ts.context(
        ts.SCHEME_TYPE.CKKS, poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 40, 40]
    )
    context.global_scale = 2**40
    # one CKKSVector per N/2 values: what TenSEAL does inside a longer vector, minus its warning
    pieces = [vector[i : i + 4096].tolist() for i in range(0, params, 4096)]
    nvflare_rate = params / _median_seconds(
        lambda: [ts.ckks_vector(context, piece).serialize() for piece in pieces], repeats
    )

    weights = rng.uniform(1, 10, 8)
    stack = rng.uniform(-1, 1, (8, min(params, 1_000_000)))
    numpy_rate = stack.size / _median_seconds(
        lambda: np.average(stack, axis=0, weights=weights), repeats
    )
    return [
        _figure(
            "client encrypt throughput",
            "params/s",
            ours,
            raw_seal_rate,
            "raw sealapi, same preset",
            True,
        ),
        _figure(
            "client encrypt throughput",
            "params/s",
            ours,
            nvflare_rate,
            "TenSEAL CKKSVector (NVFlare params)",
            True,
        ),
        _figure(
            "client encrypt throughput",
            "params/s",
            ours,
            numpy_rate,
            "plaintext numpy weighted mean",
            True,
        ),
    ]


def bench_mean_scaling(params: int, repeats: int) -> list[dict[str, Any]]:
    """Dividing the encrypted sum by the total weight: scale metadata vs a SEAL plaintext multiply.

    Ours rewrites the scale field of each serialized chunk (what ``Aggregator.finalize`` does);
    the baseline multiplies each chunk by an encoded 1/sum(weights) with SEAL's
    ``multiply_plain`` and serializes it, which also consumes a level that the compact preset
    does not have (so it could not even be decoded there).
    """
    client = _bench_client()
    config = client.config
    chunks = client.encrypt_chunks(np.random.default_rng(1).uniform(-1, 1, params))
    backend = backend_for(config.preset)
    from fhe_agg.hazmat.seal_format import RawCiphertext, build_ciphertext

    parsed = [backend.parse(c, what="chunk") for c in chunks]
    ours = _median_seconds(
        lambda: [
            build_ciphertext(RawCiphertext(p.parms_id, p.scale * 37.0, p.data)) for p in parsed
        ],
        repeats,
    )
    evaluator = sealapi.Evaluator(backend.context)
    loaded = [backend.load_ciphertext(c) for c in chunks]
    inverse = sealapi.Plaintext()
    # at the compact preset only ~12 bits of scale are left for the factor; 2**8 keeps it legal
    backend.encoder.encode(1.0 / 37.0, backend.data_parms_id, 2.0**8, inverse)

    def multiply() -> None:
        for ct in loaded:
            out = sealapi.Ciphertext()
            evaluator.multiply_plain(ct, inverse, out)
            backend.save(out)

    baseline = _median_seconds(multiply, repeats)
    return [
        _figure(
            "scale to weighted mean",
            "s per model",
            ours,
            baseline,
            "SEAL multiply_plain by 1/sum(w)",
            False,
        )
    ]


def _machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tenseal": ts.__version__,
    }


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# fhe_agg benchmarks — {report['date']}",
        "",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores. Medians of {report['repeats']} runs, {report['params']:,} parameters.",
        "",
        "| figure | unit | fhe_agg | baseline | baseline value | ratio |",
        "|---|---|---:|---|---:|---:|",
    ]
    for f in report["figures"]:
        lines.append(
            f"| {f['figure']} | {f['unit']} | {f['ours']:.4g} | {f['baseline_name']} | {f['baseline']:.4g} | {f['ratio']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a minute or two")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--params", type=int, default=None, help="parameters per client")
    parser.add_argument("--repeats", type=int, default=None, help="repetitions per figure")
    args = parser.parse_args(argv)
    params = args.params or (200_000 if args.quick else 1_000_000)
    repeats = args.repeats or (3 if args.quick else 5)
    report = {
        "date": dt.date.today().isoformat(),
        "machine": _machine(),
        "params": params,
        "repeats": repeats,
        "figures": bench_client_encryption(params, repeats)
        + bench_mean_scaling(params, repeats)
        + bench_threshold_decryption(params, repeats, _figure),
    }
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / report["date"]
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(_markdown(report))
    if args.json:
        print(json.dumps(report))
    else:
        print(_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
