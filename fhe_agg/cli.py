"""The ``fhe-agg`` command line."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from fhe_agg._cli_bench import register as register_bench_command
from fhe_agg._cli_identity import register as register_identity_commands
from fhe_agg._errors import FheAggError

__all__ = ["main"]


class _Group(click.Group):
    """Turns errors into one clear line and a non-zero exit, never a traceback, for every
    command and subcommand: 1 for a refusal (:class:`FheAggError`: a refused key, roster, log
    or message), 2 for a bad argument or file (``ValueError``, ``KeyError``, ``OSError``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FheAggError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except (ValueError, KeyError, OSError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            click.echo(f"error: {message}", err=True)
            ctx.exit(2)


@click.group(cls=_Group)
def main() -> None:
    """Post-quantum secure aggregation for federated learning."""


@main.command()
@click.option("--clients", default=8, show_default=True, help="Number of clients.")
@click.option("--holders", default=1, show_default=True, help="Number of key holders (n).")
@click.option("--threshold", default=1, show_default=True, help="Holders needed to decrypt (t).")
@click.option("--params", default=100_000, show_default=True, help="Model parameters per client.")
@click.option("--rounds", default=1, show_default=True, help="Rounds to run.")
@click.option(
    "--preset",
    default="auto",
    show_default=True,
    help="CKKS preset: precise, dp (= compact) or auto (dp with --dp, precise when flooding).",
)
@click.option(
    "--flooding/--no-flooding",
    default=None,
    help="40-bit noise flooding of decryptions [default: on, except a single holder without DP].",
)
@click.option(
    "--dp/--no-dp", default=False, show_default=True, help="Differentially private release."
)
@click.option("--clip", default=1.0, show_default=True, help="DP: L2 clip norm of each update.")
@click.option(
    "--noise-multiplier", default=1.0, show_default=True, help="DP: Gaussian noise multiplier z."
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
    flooding: bool | None,
    dp: bool,
    clip: float,
    noise_multiplier: float,
    seed: int | None,
    as_json: bool,
) -> None:
    """Run whole rounds in one process (key ceremony included) and report costs and accuracy."""
    from fhe_agg._simulate import SimulationSpec, run_simulation

    spec = SimulationSpec(
        clients=clients,
        holders=holders,
        threshold=threshold,
        params=params,
        rounds=rounds,
        preset=preset,
        flooding=flooding,
        dp=dp,
        clip=clip,
        noise_multiplier=noise_multiplier,
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
    for warning in result.pop("warnings", []):
        click.echo(f"warning: {warning}", err=True)
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


register_identity_commands(main)
register_bench_command(main)
