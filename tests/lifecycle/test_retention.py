"""The retention purge (pipeline/lifecycle/retention.py): horizons, holds, keys, rejects, manifests, proof."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import config
from pipeline.errors import ConfigError
from pipeline.ingest import run as ingest
from pipeline.investigate import session as query
from pipeline.lifecycle import deletions, retention
from pipeline.lifecycle.holds import add_hold, release_hold
from pipeline.privacy.keys import KeyStore
from pipeline.store.commit import Store
from tests.conftest import cases, ingest_paths, ip_tokens

from .test_lifecycle import (
    A,
    B,
    C,
    D,
    assert_consistent,
    build,
    by_date,
    cfg_for,
    invoke,
    line,
    paths,
    tree_hash,
    visible,
)


@pytest.mark.parametrize(
    ("as_of", "duration", "first_kept"),
    [
        (D(2028, 2, 29), "2y", D(2026, 2, 28)),  # no 29 Feb in 2026: the month's last day
        (D(2028, 2, 28), "2y", D(2026, 2, 28)),
        (D(2028, 3, 1), "2y", D(2026, 3, 1)),
        (D(2026, 3, 1), "2y", D(2024, 3, 1)),  # 29 Feb 2024 goes on 1 March 2026
        (D(2026, 2, 28), "2y", D(2024, 2, 28)),
        (D(2025, 2, 28), "1y", D(2024, 2, 28)),
        (D(2026, 8, 31), "18m", D(2025, 2, 28)),
        (D(2026, 1, 15), "1m", D(2025, 12, 15)),
        (D(2026, 12, 31), "730d", D(2024, 12, 31)),
        (D(2028, 2, 29), "730d", D(2026, 3, 1)),
        (D(2026, 11, 22), "30d", D(2026, 10, 23)),
    ],
)
def test_first_day_kept(as_of: dt.date, duration: str, first_kept: dt.date) -> None:
    assert retention.first_day_kept(as_of, duration) == first_kept


def test_bad_duration_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="2y, 18m or 730d"):
        retention.first_day_kept(D(2026, 1, 1), "2w")


def test_two_years_across_a_leap_day(store: Path) -> None:
    rows = [
        (n, D(2026, 2, 26) + dt.timedelta(days=n % 4), A, "192.0.2.1") for n in range(8)
    ]  # 26 Feb to 1 Mar
    build(store, rows)
    cfg = cfg_for(store)
    report = retention.purge(cfg, as_of=D(2028, 2, 29))
    assert report.policy.horizon == D(2026, 2, 28)
    assert set(by_date(store)) == {"2026-02-28", "2026-03-01"}
    retention.purge(cfg, as_of=D(2028, 3, 1))
    assert set(by_date(store)) == {"2026-03-01"}
    assert visible(store) == paths(r for r in rows if r[1] == D(2026, 3, 1))


def test_utc_midnight_edge(store: Path, tmp_path: Path) -> None:
    log = tmp_path / "tz.log"
    log.write_text(
        line(1, D(2026, 2, 27), A, "192.0.2.1", "23:30:00", "-0700")  # 2026-02-28 06:30 UTC: kept
        + line(2, D(2026, 2, 28), A, "192.0.2.1", "00:30:00", "+0100")  # 2026-02-27 23:30 UTC: purged
        + line(3, D(2026, 2, 27), A, "192.0.2.1", "23:59:59", "+0000")  # purged
        + line(4, D(2026, 2, 28), A, "192.0.2.1", "00:00:00", "+0000")  # kept
    )
    ingest_paths(store, [log], fmt="vhost_combined", domain=None)
    report = retention.purge(cfg_for(store), as_of=D(2028, 2, 29))
    assert visible(store) == paths([(1, D(2026, 2, 28), A, ""), (4, D(2026, 2, 28), A, "")])
    assert [(str(c.date), c.rows_deleted) for c in report.partitions] == [("2026-02-27", 2)]


# ----------------------------------------------------------------------------------------------------
# Property: after a purge, exactly the rows inside the window or under a hold remain


BASE = D(2025, 1, 1)
ZONES = {"+0000": 0, "-0700": -7, "+0930": 9.5}


def reference_first_day(as_of: dt.date, duration: str) -> dt.date:
    """Independent of the code under test: year/month arithmetic by date.replace, clamped to the month."""
    n, unit = int(duration[:-1]), duration[-1]
    if unit == "d":
        return as_of - dt.timedelta(days=n)
    months = n * 12 if unit == "y" else n
    year, month = as_of.year, as_of.month
    for _ in range(months):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    for day in (as_of.day, 30, 29, 28):
        try:
            return as_of.replace(year=year, month=month, day=min(day, as_of.day))
        except ValueError:
            continue
    raise AssertionError("unreachable")


DAYS = {"2y": 730, "730d": 730, "18m": 548, "1y": 365}
row_st = st.tuples(
    st.integers(0, 600), st.sampled_from([A, B, C]), st.integers(0, 23), st.sampled_from(sorted(ZONES))
)
hold_st = st.tuples(  # (domain, first day, last day, released)
    st.sampled_from([None, A, B]),
    st.none() | st.integers(0, 600),
    st.none() | st.integers(0, 600),
    st.booleans(),
)


@settings(
    max_examples=cases(15), derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    rows=st.lists(row_st, min_size=2, max_size=20),
    holds=st.lists(hold_st, min_size=1, max_size=3),
    cut=st.integers(-50, 650),  # about where the horizon falls among the rows' days
    duration=st.sampled_from(["2y", "730d", "18m", "1y"]),
    b_duration=st.sampled_from([None, "90d", "1y", "3y"]),
)
def test_purge_keeps_exactly_the_window_and_the_holds(
    rows: list[tuple[int, str, int, str]],
    holds: list[tuple[str | None, int | None, int | None, bool]],
    cut: int,
    duration: str,
    b_duration: str | None,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        log = Path(tmp) / "access.log"
        utc_days = {}
        with log.open("w") as f:
            for n, (offset, domain, hour, zone) in enumerate(rows):
                local = dt.datetime.combine(BASE + dt.timedelta(days=offset), dt.time(hour, 30))
                f.write(line(n, local.date(), domain, f"203.0.113.{n % 250 + 1}", f"{hour:02d}:30:00", zone))
                utc_days[f"/r{n}"] = (local - dt.timedelta(hours=ZONES[zone])).date(), domain
        ingest_paths(store, [log], fmt="vhost_combined", domain=None)
        spans = []
        for i, (domain, start, end, released) in enumerate(holds):
            lo, hi = sorted([start, end]) if start is not None and end is not None else (start, end)
            first = BASE + dt.timedelta(days=lo) if lo is not None else None
            last = BASE + dt.timedelta(days=hi) if hi is not None else None
            add_hold(store, f"CASE-{i}", "property test", domain=domain, date_from=first, date_to=last)
            if released:
                release_hold(store, f"CASE-{i}")
            else:
                spans.append((domain, first, last))
        as_of = BASE + dt.timedelta(days=cut + DAYS[duration])
        cfg = cfg_for(store, retention=duration, domains={B: b_duration} if b_duration else {})
        retention.purge(cfg, as_of=as_of)

        horizon = reference_first_day(as_of, duration)
        b_horizon = max(horizon, reference_first_day(as_of, b_duration)) if b_duration else horizon

        def kept(day: dt.date, domain: str) -> bool:
            inside = day >= (b_horizon if domain == B else horizon)
            held = any(
                (d is None or d == domain) and (lo is None or day >= lo) and (hi is None or day <= hi)
                for d, lo, hi in spans
            )
            return inside or held

        assert set(visible(store)) == {p for p, (day, dom) in utc_days.items() if kept(day, dom)}
        assert retention.verify(cfg, as_of=as_of).ok


# ----------------------------------------------------------------------------------------------------
# What a purge touches, deletes and records


def spread() -> list[tuple[int, dt.date, str, str]]:
    """Rows on 12 days from Jan to Apr 2024 and in Nov 2026, on three domains."""
    days = [D(2024, m, d) for m in (1, 2, 3, 4) for d in (5, 15, 25)] + [D(2026, 11, 1)]
    return [(n, days[n % len(days)], (A, B, C)[n % 3], f"198.51.100.{n % 7 + 1}") for n in range(130)]


def test_purge_never_opens_partitions_inside_the_window(store: Path) -> None:
    build(store, spread())
    inside = {p: h for p, h in tree_hash(store / "pageviews").items() if "2026-11-01" in p or "2024-04" in p}
    report = retention.purge(cfg_for(store), as_of=D(2026, 3, 20))  # first day kept 2024-03-20
    expired = {str(r[1]) for r in spread() if r[1] < D(2024, 3, 20)}
    assert {str(c.date) for c in report.partitions} == expired and len(expired) == 8
    assert all(c.action == "deleted" for c in report.partitions)
    after = tree_hash(store / "pageviews")
    assert {p: after[p] for p in inside} == inside
    assert not [p for p in (store / "pageviews").iterdir() if p.name < "date=2024-03-20"]  # directories gone
    assert_consistent(store)


def test_per_domain_retention_rewrites_only_that_domain(store: Path) -> None:
    rows = spread()
    build(store, rows)
    cfg = cfg_for(store, domains={B: "120d", C: "5y"})
    report = retention.purge(cfg, as_of=D(2024, 5, 1))  # b.example keeps 2024-01-02 on: nothing older
    assert report.policy.domains == {B: D(2024, 1, 2)} and report.policy.ignored == (C,)  # 5y > 2y: ignored
    assert not report.partitions and visible(store) == paths(rows)
    untouched = {p: h for p, h in tree_hash(store / "pageviews").items() if "2024-01" not in p}
    report = retention.purge(cfg, as_of=D(2024, 6, 1))  # now b.example keeps 2024-02-02 on
    assert [(str(c.date), c.action) for c in report.partitions] == [
        ("2024-01-05", "rewritten"), ("2024-01-15", "rewritten"), ("2024-01-25", "rewritten"),
    ]  # fmt: skip
    assert all(set(c.domains) == {B} and c.rows_left for c in report.partitions)
    assert visible(store) == paths(r for r in rows if not (r[2] == B and r[1] < D(2024, 2, 2)))
    after = tree_hash(store / "pageviews")
    assert {p: after.get(p) for p in untouched} == untouched  # other days not rewritten
    assert_consistent(store)


def test_dry_run_changes_nothing_and_reports_what_the_run_does(store: Path) -> None:
    build(store, spread())
    add_hold(store, "INC-1", "test", domain=A, date_from=D(2024, 2, 1), date_to=D(2024, 2, 20))
    cfg = cfg_for(store, domains={B: "20m"})
    roots = (store, Path(cfg.key_dir))
    before = tree_hash(*roots)
    dry = retention.purge(cfg, as_of=D(2026, 3, 20), dry_run=True)
    code, out, _ = invoke("purge", "--store", str(store), "--as-of", "2026-03-20", "--dry-run")
    assert tree_hash(*roots) == before
    assert code == 0 and "would delete" in out and "kept under hold INC-1" in out
    real = retention.purge(cfg, as_of=D(2026, 3, 20))
    assert (
        dry.partitions == real.partitions
        and dry.keys_destroyed == real.keys_destroyed
        and dry.rows_deleted > 0
    )
    assert dry.record is None and real.record is not None


def test_keys_of_purged_periods_destroyed_except_where_held_rows_remain(store: Path) -> None:
    build(store, spread())
    cfg = cfg_for(store)
    ks = KeyStore(Path(cfg.key_dir), "month")
    assert [k.period_id for k in ks.list()] == ["2024-01", "2024-02", "2024-03", "2024-04", "2026-11"]
    add_hold(store, "INC-7", "test", domain=C, date_from=D(2024, 2, 10), date_to=D(2024, 2, 20))
    report = retention.purge(cfg, as_of=D(2026, 3, 20))  # first day kept 2024-03-20
    assert report.keys_destroyed == ("2024-01",) and report.keys_kept == ("2024-02",)
    assert report.held == {"INC-7": sum(1 for r in spread() if r[2] == C and r[1] == D(2024, 2, 15))}
    assert [c.action for c in report.partitions if c.holds] == ["rewritten"]  # only the held rows stay
    assert {k: ks.status(k) for k in ("2024-01", "2024-02", "2024-03")} == {
        "2024-01": "destroyed", "2024-02": "present", "2024-03": "present",
    }  # fmt: skip
    assert invoke("hold", "release", "INC-7", "--store", str(store))[0] == 0
    report = retention.purge(cfg, as_of=D(2026, 3, 20))
    assert report.keys_destroyed == ("2024-02",) and ks.status("2024-02") == "destroyed"
    assert set(by_date(store)) == {"2024-03-25", "2024-04-05", "2024-04-15", "2024-04-25", "2026-11-01"}
    record = json.loads(Path(str(report.record)).read_text())
    assert record["keys_destroyed"] == ["2024-02"]


def test_rejects_and_manifests_have_their_own_retention(store: Path, tmp_path: Path) -> None:
    today = retention.today()
    logs = []
    for i in range(3):  # three batches: manifests 1..3 of writer "files"
        log = tmp_path / f"{i}.log"
        log.write_text(line(i, D(2026, 11, 1), A, "192.0.2.1") + "garbage line\n")
        logs.append(log)
        ingest_paths(store, [log], fmt="vhost_combined", domain=None)
    cfg = cfg_for(store)
    assert not retention.purge(cfg, as_of=today + dt.timedelta(days=30)).rejects  # 30d: still kept
    report = retention.purge(cfg, as_of=today + dt.timedelta(days=31))
    assert [(c.table, c.rows_deleted) for c in report.rejects] == [("_rejects", 3)]
    assert not list(store.glob("_rejects/date=*/*"))
    far = today + dt.timedelta(days=2 * 366 + 1)
    report = retention.purge(cfg, as_of=far)
    assert report.manifests_deleted["files"] == 2  # the newest of each writer stays
    assert sorted(p.name for p in (store / "_manifests" / "files").iterdir()) == ["000000000003.json"]
    # the sequence continues from the newest manifest, and no stream is read again
    again = ingest_paths(store, [*logs, tmp_path / "0.log"], fmt="vhost_combined", domain=None)
    assert again.rows == 0
    (tmp_path / "3.log").write_text(line(3, D(2026, 11, 2), A, "192.0.2.1"))
    ingest_paths(store, [tmp_path / "3.log"], fmt="vhost_combined", domain=None)
    assert (store / "_manifests" / "files" / "000000000004.json").exists()
    assert query.run(store, "SELECT count(*) FROM ingest_runs").rows[0][0] >= 3
    assert visible(store) == paths([(3, D(2026, 11, 2), A, "")])


def test_deletion_log_has_no_personal_data(store: Path) -> None:
    build(store, spread())
    add_hold(
        store,
        "INC-9",
        "192.0.2.55 attacked /admin",
        domain=A,
        date_from=D(2024, 1, 1),
        date_to=D(2024, 1, 31),
    )
    retention.purge(cfg_for(store, domains={B: "1y"}), as_of=D(2026, 3, 20))
    text = "".join(p.read_text() for p in (store / "_deletions").glob("*.json"))
    assert text and not ip_tokens(text) and "/r" not in text and "attacked" not in text
    (record,) = deletions.records(store)
    assert record["by"] and record["operation"] == "purge" and record["status"] == "complete"
    held = sum(1 for r in spread() if r[2] == A and r[1].month == 1 and r[1].year == 2024)
    assert record["holds_honoured"] == [{"case": "INC-9", "rows": held}]
    assert {p["date"] for p in record["partitions"]} >= {"2024-01-05", "2024-02-05"}
    assert all(set(p) >= {"rows_deleted", "domains", "holds"} for p in record["partitions"])


def test_verify_proves_and_names_holds(store: Path) -> None:
    build(store, spread())
    add_hold(store, "INC-3", "test", domain=B)
    code, out, err = invoke("purge", "--verify", "--store", str(store), "--as-of", "2026-03-20")
    assert code == 6 and "FAILED" in out and "2024-01-05" in out and "verification failed" in err
    invoke("purge", "--store", str(store), "--as-of", "2026-03-20")
    code, out, _ = invoke("purge", "--verify", "--store", str(store), "--as-of", "2026-03-20")
    assert code == 0 and out.startswith("verified") and "kept under hold INC-3" in out
    assert "active hold: INC-3 (b.example" in out
    code, out, _ = invoke("purge", "--verify", "--store", str(store), "--as-of", "2026-03-20", "--json")
    data = json.loads(out)
    assert data["ok"] and data["held"]["INC-3"] > 0 and data["keys_not_destroyed"] == []


def test_verify_counts_bytes_on_disk_that_readers_no_longer_see(store: Path) -> None:
    """A purge killed after its commit but before unlinking: hidden from readers, still on disk."""
    build(store, spread())
    cfg = cfg_for(store)
    old = next((store / "pageviews" / "date=2024-01-05").iterdir()).relative_to(store).as_posix()
    pending = {"seq": 1, "files": [], "retire": [old], "phase": "committed"}
    Store(store, "maintenance").write_json(store / "_state" / "maintenance" / "pending.json", pending)
    assert "2024-01-05" not in by_date(store)  # readers no longer see it ...
    assert retention.verify(cfg, as_of=D(2026, 3, 20)).expired_rows["2024-01-05"] == 10  # ... but it is there
    retention.purge(cfg, as_of=D(2026, 3, 20))  # recovery finishes the retirement, then the purge runs
    assert retention.verify(cfg, as_of=D(2026, 3, 20)).ok


def test_purge_json_report(store: Path) -> None:
    build(store, spread())
    code, out, _ = invoke("purge", "--store", str(store), "--as-of", "2026-03-20", "--json")
    data = json.loads(out)
    assert code == 0 and data["rows_deleted"] == 80 and data["policy"]["horizon"] == "2024-03-20"
    assert data["keys_destroyed"] == ["2024-01", "2024-02"] and data["record"].endswith(".json")


def test_purge_runs_beside_a_running_ingest(store: Path) -> None:
    build(store, spread())
    with Store(store, "files").lock():  # cron ingest in progress: maintenance has its own lock
        report = retention.purge(cfg_for(store), as_of=D(2026, 3, 20))
    assert report.rows_deleted == 80
    with Store(store, "maintenance").lock():  # and ingest is not blocked by maintenance
        assert (
            ingest.run(
                cfg_for(store), [config.SourceConfig(path=str(store.parent / "store-access.log"))]
            ).rows
            == 0
        )


def test_key_destruction_outside_a_purge_is_recorded(store: Path) -> None:
    from pipeline.lifecycle import audited
    from pipeline.rules import os_user

    build(store, spread())
    assert audited.destroy_keys(cfg_for(store), D(2024, 2, 1), case="C-1") == ["2024-01"]
    (path,) = (store / "_deletions").glob("*.json")
    record = json.loads(path.read_text())
    assert (record["operation"], record["keys_destroyed"], record["by"]) == (
        "destroy-keys",
        ["2024-01"],
        os_user(),
    )
    assert record["status"] == "complete" and record["keys_pending"] == ["2024-01"]


def test_purge_refuses_to_delete_rows_whose_keys_it_cannot_reach(store: Path, tmp_path: Path) -> None:
    # Found by review: with a mistyped privacy.key_dir purge deleted the expired rows, destroyed no
    # key, and exited 0: the pseudonym keys of purged periods outlived their rows, unnoticed.
    from pipeline.errors import StoreError

    build(store, spread())
    cfg = cfg_for(store)
    typo = cfg.with_overrides(privacy=config.replace(cfg.privacy, key_dir=str(tmp_path / "typo-keys")))
    before = sorted(p.name for p in store.glob("pageviews/date=*"))
    with pytest.raises(StoreError, match=r"no keys of this store at .*typo-keys.*nothing was purged"):
        retention.purge(typo, as_of=D(2026, 3, 20))
    assert sorted(p.name for p in store.glob("pageviews/date=*")) == before
    assert not (tmp_path / "typo-keys").exists()
    (tmp_path / "typo-keys").mkdir(mode=0o700)  # an existing, wrong, empty directory: the same
    with pytest.raises(ConfigError, match=r"key directory .*typo-keys holds no keys.*nothing was changed"):
        retention.purge(typo, as_of=D(2026, 3, 20))
    assert sorted(p.name for p in store.glob("pageviews/date=*")) == before
    report = retention.purge(cfg, as_of=D(2026, 3, 20))  # the right directory: rows and keys go
    assert report.keys_destroyed and report.partitions
