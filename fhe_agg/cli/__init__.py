"""The ``fhe-agg`` command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fhe_agg.cli._audit import _FILE
from fhe_agg.cli._bench import register as register_bench_command
from fhe_agg.cli._identity import _passphrase
from fhe_agg.cli._identity import register as register_identity_commands
from fhe_agg.errors import FheAggError

if TYPE_CHECKING:
    from fhe_agg.sim._deployment import Deployment

__all__ = ["main"]


class _Group(click.Group):
    """Turns errors into one clear line and a non-zero exit, never a traceback, for every
    command and subcommand: 1 for a refusal (:class:`FheAggError`: a refused key, roster, log
    or message), 2 for a bad argument or file (``ValueError``, ``KeyError``, ``OSError``)."""

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, standalone_mode: bool = True, **kwargs: Any
    ) -> Any:
        """Usage errors (bad option, missing file) also become one ``error:`` line, exit 2."""
        if not standalone_mode:
            return super().main(args, standalone_mode=False, **kwargs)
        try:
            code = super().main(args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.format_message())  # a bare group name shows its help
            sys.exit(0)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fhe-agg", message="fhe-agg %(version)s")
def main() -> None:
    """Post-quantum secure aggregation for federated learning."""


@main.command(short_help="Run simulated rounds end to end and report cost and accuracy.")
@click.option("--clients", default=8, show_default=True, help="Number of clients.")
@click.option("--holders", default=1, show_default=True, help="Number of key holders (n).")
@click.option("--threshold", default=1, show_default=True, help="Holders needed to decrypt (t).")
@click.option("--params", default=100_000, show_default=True, help="Model parameters per client.")
@click.option("--rounds", default=1, show_default=True, help="Rounds to run.")
@click.option(
    "--preset",
    default="auto",
    show_default=True,
    help="CKKS preset: precise, dp (= compact) or auto (dp with --dp, else precise; compact "
    "only with --unsafe-exact).",
)
@click.option(
    "--flooding/--no-flooding",
    default=None,
    help="40-bit noise flooding of decryptions [default: on; --no-flooding needs --dp].",
)
@click.option(
    "--unsafe-exact",
    is_flag=True,
    help="UNSAFE: exact decryption by a single key holder, no noise; one release with its "
    "ciphertext reveals the key (Li-Micciancio).",
)
@click.option(
    "--dp/--no-dp", default=False, show_default=True, help="Differentially private release."
)
@click.option("--clip", default=1.0, show_default=True, help="DP: L2 clip norm of each update.")
@click.option(
    "--noise-multiplier", default=1.0, show_default=True, help="DP: Gaussian noise multiplier z."
)
@click.option(
    "--adjacency",
    type=click.Choice(["zero-out", "replace-one"]),
    default="zero-out",
    show_default=True,
    help="DP neighbours: one update zeroed (sensitivity max_weight*clip) or replaced (twice).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed for reproducible data and noise (keys always come from the OS CSPRNG).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes each client, the aggregator and each key holder verify/encrypt on.",
)
@click.option(
    "--roster",
    "roster_path",
    type=_FILE,
    default=None,
    help="Play this admin-signed roster's members with their key files (needs --admin-pub).",
)
@click.option("--admin-pub", type=_FILE, default=None, help="The roster admin's .pub.json.")
@click.option(
    "--keys",
    "keys_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("keys"),
    show_default=True,
    help="With --roster: directory holding every member's ID.key.",
)
@click.option(
    "--passphrase-file",
    type=_FILE,
    default=None,
    help="With --roster: the key files' passphrase or key secret.",
)
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --roster: append signed, hash-chained events to this file.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress on stderr [default: when stderr is a terminal]; stdout stays the result.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, nothing else.")
@click.pass_context
def simulate(
    ctx: click.Context,
    clients: int,
    holders: int,
    threshold: int,
    params: int,
    rounds: int,
    preset: str,
    flooding: bool | None,
    unsafe_exact: bool,
    dp: bool,
    clip: float,
    noise_multiplier: float,
    adjacency: str,
    seed: int | None,
    workers: int,
    roster_path: Path | None,
    admin_pub: Path | None,
    keys_dir: Path,
    passphrase_file: Path | None,
    audit_log: Path | None,
    progress: bool | None,
    as_json: bool,
) -> None:
    """Run whole rounds in one process (key ceremony included) and report costs and accuracy.

    With --roster, every party uses its identity from the key directory and the roster's
    preset, min_clients and threshold; revoked clients' updates are refused and logged.
    Numeric options are bounded before the run starts (an error names the option and limit).
    """
    from fhe_agg.ckks._dp import Adjacency
    from fhe_agg.cli._simulate import checked_spec, run_with_progress

    deployment, min_clients = None, None
    if roster_path is not None:
        deployment = _deployment(ctx, roster_path, admin_pub, keys_dir, passphrase_file)
        r = deployment.roster
        clients, holders, threshold = len(deployment.clients), len(deployment.holders), r.threshold
        preset, min_clients = r.preset, r.min_clients
    elif audit_log is not None or admin_pub is not None:
        raise ValueError("--audit-log and --admin-pub: only with --roster")
    spec = checked_spec(
        min_clients=min_clients,
        clients=clients,
        holders=holders,
        threshold=threshold,
        params=params,
        rounds=rounds,
        preset=preset,
        flooding=flooding,
        unsafe_exact=unsafe_exact,
        dp=dp,
        clip=clip,
        noise_multiplier=noise_multiplier,
        adjacency=Adjacency(adjacency),
        seed=seed,
        workers=workers,
    )
    result = run_with_progress(spec, progress, deployment=deployment, audit_log=audit_log)
    _print_result(result, as_json=as_json)


def _print_result(result: dict[str, Any], *, as_json: bool) -> None:
    """The simulation's measurements: one JSON line, or aligned ``key  value`` lines with
    warnings and refused updates on stderr."""
    if as_json:
        click.echo(json.dumps(result))
        return
    for warning in result.pop("warnings", []):
        click.echo(f"warning: {warning}", err=True)
    for refusal in result.pop("refused", []):
        click.echo(
            f"refused: round {refusal['round']} client {refusal['client']}: "
            f"{refusal['error']}: {refusal['reason']}",
            err=True,
        )
    width = max(len(k) for k in result)
    for key, value in result.items():
        click.echo(f"{key:<{width}}  {value}")


def _deployment(
    ctx: click.Context,
    roster_path: Path,
    admin_pub: Path | None,
    keys_dir: Path,
    passphrase_file: Path | None,
) -> Deployment:
    """Load the roster deployment; refuse explicit --clients/--holders/--threshold/--preset
    that contradict it (the roster is authoritative)."""
    from fhe_agg.sim._deployment import load_deployment

    if admin_pub is None:
        raise ValueError("--roster: also pass --admin-pub to verify the roster's signature")
    deployment = load_deployment(
        roster_path, admin_pub, keys_dir, passphrase=_passphrase(passphrase_file)
    )
    r = deployment.roster
    implied = {
        "clients": len(deployment.clients),
        "holders": len(deployment.holders),
        "threshold": r.threshold,
        "preset": r.preset,
    }
    for name, value in implied.items():
        given = ctx.params[name]
        explicit = ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
        if explicit and given != value:
            raise ValueError(f"--{name} {given}: the roster sets {name} to {value}")
    return deployment


@main.command()
def version() -> None:
    """Print library and crypto backend versions."""
    import platform
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as pkg_version

    import cryptography
    import numpy
    from cryptography.hazmat.backends.openssl import backend

    import fhe_agg
    from fhe_agg.ckks._seal import seal_version

    click.echo(f"fhe-agg {fhe_agg.__version__}")
    click.echo(f"python {platform.python_version()} ({platform.machine()})")
    click.echo(f"numpy {numpy.__version__}")
    click.echo(f"tenseal {pkg_version('tenseal')} (SEAL {seal_version()})")
    click.echo(f"cryptography {cryptography.__version__} ({backend.openssl_version_text()})")
    try:
        click.echo(f"pqcrypto {pkg_version('pqcrypto')}")
    except PackageNotFoundError:
        click.echo("pqcrypto not installed")


register_identity_commands(main)
register_bench_command(main)
