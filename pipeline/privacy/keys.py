"""Per-period secret keys (``KeyStore``), their period ids, and crypto-shredding.

The keys key the pseudonyms of client addresses and the custody digests (``privacy.digests``); their
files are written by ``privacy.keyfiles``. A pseudonym is the same for one address throughout one
period (an investigator can follow it across requests and days) and unrelated in the next. An
*unkeyed* hash of an IPv4 address is reversed by trying all 2^32 addresses; a keyed one cannot be,
and once the retention purge destroys the key of a period (``destroy_before``) its pseudonyms,
wherever copies of them survive, can no longer be linked to any address: crypto-shredding.

Keys live outside the store, one 32-byte file per period (``2026-11.key``) in a 0700 directory. A
destroyed key leaves a tombstone (``2026-11.destroyed``) so that lookups answer "destroyed" rather
than nothing, and so that no new key is ever made for a purged period.
"""

from __future__ import annotations

import builtins
import calendar
import contextlib
import datetime as dt
import json
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast, get_args

from pipeline.errors import ConfigError, KeyDestroyedError, StoreError
from pipeline.privacy.keyfiles import (
    KEY_BYTES,
    iso_utc,
    mtime,
    new_key,
    prepare_key_dir,
    shred,
    write_atomic,
    write_exclusive,
)
from pipeline.store.fs import fsync_dir

if TYPE_CHECKING:
    import polars as pl  # (loaded by period_ids: looking up one key needs no column engine)

    from pipeline.config import Config

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = get_args(Period)
KeyStatus = Literal["present", "destroyed", "missing"]

KEY_SUFFIX = ".key"
TOMBSTONE_SUFFIX = ".destroyed"
CUSTODY_DIR = "custody"
STREAM_KEY_FILE = "streams.key"

# strftime patterns of the period ids; %G-W%V is the ISO week (2027-01-01 is in 2026-W53).
_FORMATS: dict[Period, str] = {"day": "%Y-%m-%d", "week": "%G-W%V", "month": "%Y-%m"}
# [0-9], not \d: \d also matches non-ASCII digits, which int() would accept.
_DAY_ID = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_WEEK_ID = re.compile(r"([0-9]{4})-W([0-9]{2})")
_MONTH_ID = re.compile(r"([0-9]{4})-([0-9]{2})")


# ----------------------------------------------------------------------------------------------------
# Period ids


def period_id(d: dt.date, period: Period) -> str:
    """``2026-11-22`` (day), ``2026-W47`` (ISO week), ``2026-11`` (month)."""
    if period == "day":
        return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"  # not isoformat(): a datetime adds the time
    if period == "week":
        year, week, _ = d.isocalendar()
        return f"{year:04d}-W{week:02d}"
    if period == "month":
        return f"{d.year:04d}-{d.month:02d}"
    raise ValueError(f"unknown period {period!r}: expected one of {', '.join(PERIODS)}")


def period_ids(ts: pl.Series, period: Period) -> pl.Series:
    """Vectorised ``period_id`` of UTC timestamps (naive ones are taken as UTC); null stays null."""
    import polars as pl

    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}: expected one of {', '.join(PERIODS)}")
    dtype = ts.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone not in (None, "UTC"):
            ts = ts.dt.convert_time_zone("UTC")  # periods are UTC periods, whatever the column's zone
        ts = ts.dt.date()
    elif dtype != pl.Date:
        raise TypeError(f"period_ids needs a Datetime or Date series, got {dtype}")
    # Format each distinct day once: a batch spans a few days but may hold millions of rows.
    days = ts.unique()
    return ts.replace_strict(days, days.dt.strftime(_FORMATS[period]), return_dtype=pl.String).alias("period")


def period_bounds(pid: str) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of a period id."""
    _, first, last = _parse_period(pid)
    return first, last


def period_kind(pid: str) -> Period:
    """Which kind of period an id names (``2026-W47`` → ``"week"``)."""
    return _parse_period(pid)[0]


def _parse_period(pid: str) -> tuple[Period, dt.date, dt.date]:
    try:
        if m := _DAY_ID.fullmatch(pid):
            day = dt.date(int(m[1]), int(m[2]), int(m[3]))
            return "day", day, day
        if m := _WEEK_ID.fullmatch(pid):
            monday = dt.date.fromisocalendar(int(m[1]), int(m[2]), 1)  # rejects W53 of 52-week years
            return "week", monday, monday + dt.timedelta(days=6)
        if m := _MONTH_ID.fullmatch(pid):
            year, month = int(m[1]), int(m[2])
            last = calendar.monthrange(year, month)[1]
            return "month", dt.date(year, month, 1), dt.date(year, month, last)
    except ValueError:
        pass  # a well-formed id of a day that does not exist: same message as any other
    raise ValueError(f"not a period id: {pid!r} (expected e.g. 2026-11-22, 2026-W47 or 2026-11)")


def _is_period_id(pid: str) -> bool:
    try:
        _parse_period(pid)
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------------------------------
# Key store


@dataclass(frozen=True)
class KeyInfo:
    """One period's key as listed: dates only, never the key bytes."""

    period_id: str
    created: dt.datetime
    destroyed: dt.datetime | None = None


class KeyStore:
    """One random 32-byte key per period, in files under ``key_dir`` (kept outside the store)."""

    def __init__(self, key_dir: Path, period: Period = "month", *, _custody: bool = False) -> None:
        if period not in PERIODS:
            raise ConfigError(f"unknown key period {period!r}: expected one of {', '.join(PERIODS)}")
        self.key_dir = Path(key_dir)
        self.period: Period = period
        self._is_custody = _custody
        prepare_key_dir(self.key_dir)

    @classmethod
    def configured(cls, cfg: Config) -> KeyStore:
        """The key directory a config names (``privacy.key_dir``, periods of ``privacy.key_period``)."""
        return cls(Path(cfg.key_dir), cast(Period, cfg.privacy.key_period))

    @property
    def custody(self) -> KeyStore:
        """The custody keys (``<key_dir>/custody/``): one per period, keying the chain-of-custody digests.

        Same period kind and life cycle as the pseudonym keys: created on first use, destroyed by
        ``destroy_before`` together with the pseudonym key of the same period.
        """
        if self._is_custody:
            return self
        return KeyStore(self.key_dir / CUSTODY_DIR, self.period, _custody=True)

    def custody_key(self, period_id: str) -> bytes | None:
        """The custody key of a period (made on first use); None once the period's keys were destroyed.

        A period whose pseudonym key was destroyed is destroyed for custody too: no custody key is
        ever made for purged data (old logs ingested again, or a legacy store migrated late).
        """
        if not self._is_custody and self._tombstone_path(period_id).exists():
            return None
        try:
            return self.custody.key(period_id, create=True)
        except KeyDestroyedError:
            return None

    def has_stream_key(self) -> bool:
        """Whether the stream fingerprint key exists (``stream_key`` would otherwise make one)."""
        return (self.custody.key_dir / STREAM_KEY_FILE).is_file()

    def stream_key(self) -> bytes:
        """The key of the stream fingerprints (``custody/streams.key``): made once, never rotated by a purge.

        A stream lives as long as its file (and its rotated copies) is read; a key destroyed with a
        period would make a live stream unrecognisable and read again from its start. It keys only
        fingerprints of a file's first KiB and of the bytes before a committed offset, which identify a
        stream but prove nothing.
        """
        store = self.custody
        path = store.key_dir / STREAM_KEY_FILE
        try:
            data: bytes | None = path.read_bytes()
        except FileNotFoundError:
            data = None
        except OSError as e:
            raise StoreError(f"cannot read key file {path}: {e.strerror}") from e
        if data is None:
            tmp = store.key_dir / f".{STREAM_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
            try:
                write_exclusive(tmp, new_key())
                with contextlib.suppress(FileExistsError):  # another process won: use its key
                    os.link(tmp, path)
                fsync_dir(store.key_dir)
                data = path.read_bytes()
            except OSError as e:
                raise StoreError(f"cannot create key file {path}: {e.strerror}") from e
            finally:
                tmp.unlink(missing_ok=True)
        if len(data) != KEY_BYTES or not any(data):
            raise StoreError(f"key file {path} is damaged ({len(data)} bytes): restore it from the backup")
        return data

    def __repr__(self) -> str:
        return f"KeyStore({str(self.key_dir)!r}, period={self.period!r})"

    def key(self, period_id: str, *, create: bool) -> bytes | None:
        """The key of a period; None when missing (create=False) or destroyed (create=False).

        With create=True a missing key is made; a destroyed one raises KeyDestroyedError: a new key
        for a purged period would quietly start a second, unlinkable pseudonym series.
        """
        kind = period_kind(period_id)
        data = self._read_key(period_id)
        # Tombstone checked after reading: the purge writes it before zeroing the key, so a purge
        # racing this read is always seen here rather than as a damaged (zeroed) key.
        if self._tombstone_path(period_id).exists():
            if create:
                raise self._destroyed_error(period_id)
            return None
        if data is not None:
            return self._checked(period_id, data)
        if not create:
            return None
        if kind != self.period:
            raise ValueError(
                f"period id {period_id} is a {kind}, but this key store makes {self.period} keys"
            )
        return self._create(period_id)

    def status(self, period_id: str) -> KeyStatus:
        _parse_period(period_id)  # validates: the id becomes part of a path
        if self._tombstone_path(period_id).exists():
            return "destroyed"
        return "present" if self._key_path(period_id).exists() else "missing"

    def list(self) -> builtins.list[KeyInfo]:
        """Every period with a key or a tombstone, oldest first."""
        infos: dict[str, KeyInfo] = {}
        for pid in self._period_ids(TOMBSTONE_SUFFIX):
            infos[pid] = self._read_tombstone(pid)
        for pid in self._period_ids(KEY_SUFFIX):
            if pid not in infos:  # a key left by a purge that crashed half-way is still destroyed
                infos[pid] = KeyInfo(pid, mtime(self._key_path(pid)))
        return sorted(infos.values(), key=lambda i: (period_bounds(i.period_id), i.period_id))

    def destroy_before(self, d: dt.date) -> builtins.list[str]:
        """Crypto-shred the key of every period whose last day is before ``d``; returns their ids.

        The custody keys of those periods go too (their chain-of-custody digests become unverifiable),
        also when pseudonyms are off and only custody keys exist.
        """
        doomed = self.periods_before(d)
        for pid in self._before(d):
            self._destroy(pid)
        if self._has_custody():
            self.custody.destroy_before(d)
        return doomed

    def periods_before(self, d: dt.date) -> builtins.list[str]:
        """The periods ``destroy_before(d)`` would shred (custody keys included), oldest first."""
        ids = set(self._before(d))
        if self._has_custody():
            ids |= set(self.custody.periods_before(d))
        return _oldest_first(ids)

    def _before(self, d: dt.date) -> builtins.list[str]:
        return _oldest_first(pid for pid in self._period_ids(KEY_SUFFIX) if period_bounds(pid)[1] < d)

    def _has_custody(self) -> bool:
        """A pseudonym key store with custody keys beside it (destroyed with the same periods)."""
        return not self._is_custody and (self.key_dir / CUSTODY_DIR).is_dir()

    # -- internals ------------------------------------------------------------------------------------

    def _key_path(self, pid: str) -> Path:
        return self.key_dir / f"{pid}{KEY_SUFFIX}"

    def _tombstone_path(self, pid: str) -> Path:
        return self.key_dir / f"{pid}{TOMBSTONE_SUFFIX}"

    def _period_ids(self, suffix: str) -> builtins.list[str]:
        names = (p.name for p in self.key_dir.iterdir())
        return [n[: -len(suffix)] for n in names if n.endswith(suffix) and _is_period_id(n[: -len(suffix)])]

    def _read_key(self, pid: str) -> bytes | None:
        path = self._key_path(pid)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StoreError(f"cannot read key file {path}: {e.strerror}") from e

    def _checked(self, pid: str, data: bytes) -> bytes:
        if len(data) != KEY_BYTES or not any(data):
            path = self._key_path(pid)
            raise StoreError(
                f"key file {path} is damaged ({len(data)} bytes): restore it from the key backup"
            )
        return data

    def _create(self, pid: str) -> bytes:
        """Make and publish a new key; when another process published one first, use that one."""
        final = self._key_path(pid)
        tmp = self.key_dir / f".{pid}{KEY_SUFFIX}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        key = new_key()
        write_exclusive(tmp, key)
        try:
            # link(), not replace(): atomic AND never overwrites, so of two racing processes exactly
            # one key wins and the loser cannot clobber a key whose pseudonyms are already written.
            os.link(tmp, final)
            won = True
        except FileExistsError:
            won = False
        except OSError as e:
            raise StoreError(
                f"cannot create key file {final}: {e.strerror} (key_dir needs hard links)"
            ) from e
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(self.key_dir)
        if not won:
            return self.key(pid, create=False) or self._lost_race(pid)
        if self._tombstone_path(pid).exists():  # a purge ran between our check and the link
            shred(final)
            raise self._destroyed_error(pid)
        return key

    def _lost_race(self, pid: str) -> bytes:
        if self._tombstone_path(pid).exists():
            raise self._destroyed_error(pid)
        raise StoreError(f"key file {self._key_path(pid)} vanished while being created")

    def _destroy(self, pid: str) -> None:
        # Tombstone first: if we crash after it, the period reads as destroyed and the next purge
        # finishes the shredding; the other order could leave a period that looks never keyed.
        tomb = self._tombstone_path(pid)
        key_path = self._key_path(pid)
        if not tomb.exists():
            now = dt.datetime.now(dt.UTC)
            record = {"period": pid, "created": iso_utc(mtime(key_path)), "destroyed": iso_utc(now)}
            write_atomic(tomb, json.dumps(record).encode())
        # Temp files of a crashed creation may hold the key too (a hard link to it, or a copy).
        for path in [key_path, *self.key_dir.glob(f".{pid}{KEY_SUFFIX}.*.tmp")]:
            shred(path)
        fsync_dir(self.key_dir)

    def _read_tombstone(self, pid: str) -> KeyInfo:
        path = self._tombstone_path(pid)
        try:
            record = json.loads(path.read_bytes())
            created = dt.datetime.fromisoformat(record["created"])
            destroyed = dt.datetime.fromisoformat(record["destroyed"])
        except (OSError, ValueError, KeyError, TypeError):
            # The tombstone's existence is what matters; its dates are informational.
            created = destroyed = mtime(path)
        return KeyInfo(pid, created, destroyed)

    def _destroyed_error(self, pid: str) -> KeyDestroyedError:
        when = self._read_tombstone(pid).destroyed
        day = when.date().isoformat() if when else "an unknown date"
        return KeyDestroyedError(
            f"the key of period {pid} was destroyed on {day} (its data was purged); "
            f"no new pseudonyms can be made for it: are old logs being re-ingested?"
        )


def _oldest_first(ids: Iterable[str]) -> builtins.list[str]:
    return sorted(ids, key=lambda p: (period_bounds(p), p))
