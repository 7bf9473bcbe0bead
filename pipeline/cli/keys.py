"""hostlogs keys: list and destroy the per-period pseudonym keys (never shows key bytes)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline import config
from pipeline.cli._common import (
    DATE,
    authority_options,
    handle_errors,
    json_option,
    load_config,
    main,
    store_options,
)
from pipeline.errors import ProofFailed, StoreError
from pipeline.lifecycle import audited
from pipeline.privacy import keys


def _config(config_path: str | None, store: str | None, key_dir: str | None) -> config.Config:
    """The config with --store and --key-dir applied (keys default to <store>-keys)."""
    cfg = load_config(config_path, store)
    if key_dir:
        cfg = cfg.with_overrides(privacy=config.replace(cfg.privacy, key_dir=key_dir))
    if not Path(cfg.key_dir).is_dir():  # (a wrong path is never made into an empty key directory)
        where = "--key-dir" if key_dir else "--store or privacy.key_dir"
        raise StoreError(f"no key directory at {cfg.key_dir}: the first ingest makes it; check {where}")
    return cfg


@main.group("keys")
def keys_group() -> None:
    """Pseudonym keys: one per period, outside the store, destroyed with the period's data.

    Example:

        hostlogs keys list --config /etc/hostlogs/hostlogs.toml
    """


F = TypeVar("F", bound=Callable[..., Any])


def _key_options(fn: F) -> F:
    """--config, --store and --key-dir (keys default to <store>-keys, beside the store)."""
    fn = click.option("--key-dir", help="Key directory (overrides privacy.key_dir).")(fn)
    return store_options(fn)


@keys_group.command("list")
@_key_options
@json_option
@handle_errors
def list_cmd(config_path: str | None, store: str | None, key_dir: str | None, as_json: bool) -> None:
    """List key periods with creation and destruction times.

    Example:

        hostlogs keys list --store /var/lib/hostlogs/store
    """
    cfg = _config(config_path, store, key_dir)
    infos = keys.KeyStore.configured(cfg).list()
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
@click.option("--before", required=True, type=DATE, help="First day kept.")
@authority_options
@json_option
@handle_errors
def destroy_cmd(
    config_path: str | None, store: str | None, key_dir: str | None, before: dt.date, case: str | None,
    request: str | None, reason: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Destroy the keys of every period that ends before DATE (crypto-shredding).

    Pseudonyms of those periods can no longer be linked to an address, in the store or in any copy.

    Example:

        hostlogs keys destroy --before 2024-11-01 --case INC-2026-042 --store /var/lib/hostlogs/store
    """
    cfg = _config(config_path, store, key_dir)
    destroyed = audited.destroy_keys(cfg, before, case=case, request=request, reason=reason)
    if as_json:
        click.echo(json.dumps({"before": str(before), "destroyed": destroyed}, indent=1))
    else:
        click.echo(f"destroyed {len(destroyed)} key(s): {', '.join(destroyed) or '-'}")


@keys_group.command("prove")
@_key_options
@click.argument("file")
@json_option
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

    proofs = custody.prove(_config(config_path, store, key_dir), file)
    if as_json:
        click.echo(json.dumps([vars(p) for p in proofs], indent=1))
    else:
        for p in proofs:
            where = f"{p.writer}/{p.seq:012d}  bytes {p.start:,}–{p.end:,}"
            click.echo(f"{where}  period {p.period or '-'}  {p.status}")
    verified = sum(p.status == "verified" for p in proofs)
    if not proofs:
        raise ProofFailed(f"no batch of the store was read from {file}")
    if any(p.status in ("DIFFERS", "file too short") for p in proofs):
        raise ProofFailed(f"{file} does not match what was ingested from it ({verified} batch(es) verified)")
    if not as_json:  # --json: the one JSON document only
        click.echo(f"{file}: {verified} of {len(proofs)} batch(es) verified")
