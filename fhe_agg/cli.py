"""The ``fhe-agg`` command line."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from fhe_agg._errors import FheAggError

__all__ = ["main"]


class _Group(click.Group):
    """Turns library errors into one clear line and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (FheAggError, ValueError) as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2 if isinstance(exc, ValueError) else 1)


@click.group(cls=_Group)
def main() -> None:
    """Post-quantum secure aggregation for federated learning."""


@main.command()
@click.option("--clients", default=8, show_default=True, help="Number of clients.")
@click.option("--holders", default=1, show_default=True, help="Number of key holders (n).")
@click.option("--threshold", default=1, show_default=True, help="Holders needed to decrypt (t).")
@click.option("--params", default=100_000, show_default=True, help="Model parameters per client.")
@click.option("--rounds", default=1, show_default=True, help="Rounds to run.")
@click.option("--preset", default="compact", show_default=True, help="CKKS parameter preset.")
@click.option(
    "--dp/--no-dp", default=False, show_default=True, help="Differentially private release."
)
@click.option(
    "--seed", type=int, default=None, help="Seed for reproducible keys and data (testing only)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, nothing else.")
def simulate(
    clients: int,
    holders: int,
    threshold: int,
    params: int,
    rounds: int,
    preset: str,
    dp: bool,
    seed: int | None,
    as_json: bool,
) -> None:
    """Run whole rounds in one process with synthetic updates and report the costs."""
    from fhe_agg._simulate import SimulationSpec, run_simulation

    if dp:
        raise ValueError("--dp: differential privacy is not available in this build")
    spec = SimulationSpec(
        clients=clients,
        holders=holders,
        threshold=threshold,
        params=params,
        rounds=rounds,
        preset=preset,
        seed=seed,
    )
    show_progress = not as_json and sys.stderr.isatty()
    if show_progress:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("encrypting and aggregating", total=clients * rounds)
            result = run_simulation(
                spec, progress=lambda phase, n: bar.advance(task, n if phase == "clients" else 0)
            )
    else:
        result = run_simulation(spec)
    if as_json:
        click.echo(json.dumps(result))
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        click.echo(f"{key:<{width}}  {value}")


@main.command()
def version() -> None:
    """Print library and crypto backend versions."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as pkg_version

    import cryptography
    from cryptography.hazmat.backends.openssl import backend

    import fhe_agg
    from fhe_agg._params import PRESETS
    from fhe_agg._seal import backend_for

    seal_backend = backend_for(PRESETS["compact"])
    header = seal_backend.save(seal_backend.context.key_context_data().parms())
    click.echo(f"fhe-agg {fhe_agg.__version__}")
    click.echo(f"tenseal {pkg_version('tenseal')} (SEAL {header[3]}.{header[4]})")
    click.echo(f"cryptography {cryptography.__version__} ({backend.openssl_version_text()})")
    try:
        click.echo(f"pqcrypto {pkg_version('pqcrypto')}")
    except PackageNotFoundError:
        click.echo("pqcrypto not installed")
