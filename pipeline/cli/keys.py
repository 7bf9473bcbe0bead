"""hostlogs keys: list and destroy the per-period pseudonym keys (never shows key bytes)."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline import config
from pipeline.cli._common import handle_errors, main
from pipeline.investigate import audit
from pipeline.lifecycle import deletions
from pipeline.privacy import keys


def _keystore(config_path: str | None, store: str | None, key_dir: str | None) -> keys.KeyStore:
    cfg = config.load(config_path).with_overrides(store=store)
    path = key_dir or cfg.key_dir
    return keys.KeyStore(Path(path), cfg.privacy.key_period)  # type: ignore[arg-type]


@main.group("keys")
def keys_group() -> None:
    """Pseudonym keys: one per period, outside the store, destroyed with the period's data.

    Example:

        hostlogs keys list --config /etc/hostlogs/hostlogs.toml
    """


_opts = [
    click.option("--config", "config_path", type=click.Path(dir_okay=False)),
    click.option("--store", help="Store directory (keys default to <store>-keys)."),
    click.option("--key-dir", help="Key directory (overrides privacy.key_dir)."),
]


F = TypeVar("F", bound=Callable[..., Any])


def _key_options(fn: F) -> F:
    for opt in reversed(_opts):
        fn = opt(fn)
    return fn


@keys_group.command("list")
@_key_options
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def list_cmd(config_path: str | None, store: str | None, key_dir: str | None, as_json: bool) -> None:
    """List key periods with creation and destruction times.

    Example:

        hostlogs keys list --store /var/lib/hostlogs/store
    """
    infos = _keystore(config_path, store, key_dir).list()
    if as_json:
        rows = [{"period": i.period_id, "created": i.created, "destroyed": i.destroyed} for i in infos]
        click.echo(json.dumps(rows, default=str, indent=1))
        return
    click.echo(f"{'period':<12}  {'created (UTC)':<20}  destroyed (UTC)")
    for i in infos:
        destroyed = f"{i.destroyed:%Y-%m-%d %H:%M:%S}" if i.destroyed else "-"
        click.echo(f"{i.period_id:<12}  {i.created:%Y-%m-%d %H:%M:%S}   {destroyed}")


@keys_group.command("destroy")
@_key_options
@click.option("--before", required=True, type=click.DateTime(formats=["%Y-%m-%d"]), help="First day kept.")
@click.option("--case", default=None, help="Case id the destruction is recorded under (audit trail).")
@click.option("--request", default=None, help="Request id (e.g. an erasure request), if no case.")
@click.option("--reason", default=None, help="Why (recorded in the audit trail).")
@handle_errors
def destroy_cmd(
    config_path: str | None, store: str | None, key_dir: str | None, before: dt.datetime, case: str | None,
    request: str | None, reason: str | None,
) -> None:  # fmt: skip
    """Destroy the keys of every period that ends before DATE (crypto-shredding).

    Pseudonyms of those periods can no longer be linked to an address, in the store or in any copy.

    Example:

        hostlogs keys destroy --before 2024-11-01 --case INC-2026-042 --store /var/lib/hostlogs/store
    """
    cfg = config.load(config_path).with_overrides(store=store)
    case, request = audit.check_authority(case, request, "keys destroy")
    params = {"before": str(before.date())}
    with audit.recorded(cfg.store, "keys destroy", case, reason, request=request, params=params) as rec:
        destroyed = _keystore(config_path, store, key_dir).destroy_before(before.date())
        rec.params["destroyed"] = destroyed
    if destroyed and Path(cfg.store).is_dir():  # proof of deletion, like a purge's
        deletions.record_keys_destroyed(cfg.store, destroyed, before=before.date(), by=getpass.getuser())
    click.echo(f"destroyed {len(destroyed)} key(s): {', '.join(destroyed) or '-'}")


@keys_group.command("prove")
@_key_options
@click.argument("file")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def prove_cmd(
    config_path: str | None, store: str | None, key_dir: str | None, file: str, as_json: bool
) -> None:
    """Prove that FILE holds exactly the bytes the store's batches were ingested from.

    Recomputes each batch's keyed digest (HMAC-SHA256 with the custody key of its period) from FILE
    and compares it with the manifest. Exits 8 when a batch differs or no batch was read from FILE.

    Example:

        hostlogs keys prove /var/log/apache2/access.log.1 --store /var/lib/hostlogs/store
    """
    from pipeline.ingest import custody

    cfg = config.load(config_path).with_overrides(store=store)
    if key_dir:
        cfg = cfg.with_overrides(privacy=config.replace(cfg.privacy, key_dir=key_dir))
    proofs = custody.prove(cfg, file)
    if as_json:
        click.echo(json.dumps([vars(p) for p in proofs], indent=1))
    else:
        for p in proofs:
            where = f"{p.writer}/{p.seq:012d}  bytes {p.start:,}–{p.end:,}"
            click.echo(f"{where}  period {p.period or '-'}  {p.status}")
    verified = sum(p.status == "verified" for p in proofs)
    if not proofs:
        raise custody.ProofFailed(f"no batch of the store was read from {file}")
    if any(p.status in ("DIFFERS", "file too short") for p in proofs):
        raise custody.ProofFailed(
            f"{file} does not match what was ingested from it ({verified} batch(es) verified)"
        )
    click.echo(f"{file}: {verified} of {len(proofs)} batch(es) verified")
