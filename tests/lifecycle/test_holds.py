"""Legal holds (pipeline/lifecycle/holds.py): records, release, and what purge and erasure keep under them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from pipeline.errors import LockedError, StoreError, UsageError
from pipeline.investigate import audit
from pipeline.lifecycle import retention
from pipeline.lifecycle.erase import erase_unaudited as erase  # the work; the audited door: audited.erase
from pipeline.lifecycle.holds import Hold, active_holds, add_hold, list_holds, release_hold
from pipeline.rules import os_user
from pipeline.store.commit import Store
from pipeline.store.layout import HOLDS as HOLDS_DIR
from tests.conftest import ingest_paths

from .test_lifecycle import A, B, D, build, by_date, cfg_for, invoke, paths, visible


def rows() -> list[tuple[int, dt.date, str, str]]:
    """Ten days of March 2024, each with rows of two domains (expired as of 2026-06-01 under "2y")."""
    return [(n, D(2024, 3, 1 + n % 10), (A, B)[n // 10 % 2], f"203.0.113.{n % 5 + 1}") for n in range(60)]


def test_add_list_release_are_recorded(store: Path) -> None:
    build(store, rows())
    before = dt.datetime.now(dt.UTC)
    hold = add_hold(
        store, "INC-2026-042", " breach at a.example ", domain="A.example", date_from=D(2024, 3, 2)
    )
    assert (hold.case, hold.reason, hold.domain, hold.date_from, hold.date_to) == (
        "INC-2026-042", "breach at a.example", A, D(2024, 3, 2), None,
    )  # fmt: skip
    assert hold.created_by == os_user() and hold.created >= before and hold.created.tzinfo == dt.UTC
    released = release_hold(store, "INC-2026-042").hold
    assert released.released is not None and released.released_by == os_user()
    again = add_hold(store, "INC-2026-042", "reopened")  # a released case may be held again: a new record
    listed = list_holds(store)
    assert [(h.case, h.active) for h in listed] == [("INC-2026-042", False), ("INC-2026-042", True)]
    assert listed[0] == released and listed[1] == again and active_holds(store) == [again]
    files = sorted((store / HOLDS_DIR).glob("*.json"))
    assert len(files) == 2 and json.loads(files[0].read_text())["released_by"] == os_user()


GOOD_IDS = ["INC-2026-042", "jira:SEC/17#2", "case#12", "x/../../y", "A.b_c-d", "a" * 80]
BAD_IDS = ["-x", ":x", "#1", "../x", "a" * 81, "a b", "a;b", "caf\u00e9", "a\nb"]


def test_a_case_id_valid_for_a_query_can_be_held_and_released(store: Path) -> None:
    build(store, rows())
    hold = add_hold(store, "jira:SEC/17#2", "ticket", domain=A)
    # one file directly under _holds/, its name free of the id's '/', ':' and '#'
    files = [
        p.relative_to(store / HOLDS_DIR).as_posix() for p in (store / HOLDS_DIR).rglob("*") if p.is_file()
    ]
    assert files == [hold.file] and not set(hold.file) & set("/:#")
    assert [h.case for h in active_holds(store)] == ["jira:SEC/17#2"]
    released = release_hold(store, "jira:SEC/17#2").hold
    assert released.file == hold.file and not active_holds(store)
    assert json.loads((store / HOLDS_DIR / hold.file).read_text())["case"] == "jira:SEC/17#2"


def test_ids_that_differ_only_in_unsafe_characters_get_distinct_files(store: Path) -> None:
    build(store, rows())
    a, b = add_hold(store, "SEC/1", "r"), add_hold(store, "SEC:1", "r")
    assert a.file != b.file and sorted(h.case for h in active_holds(store)) == ["SEC/1", "SEC:1"]


def test_a_hold_file_of_the_old_naming_still_loads_and_releases(store: Path) -> None:
    build(store, rows())
    old = {"version": 1, "case": "INC-7", "reason": "r", "created": "2026-01-02T03:04:05+00:00",
           "created_by": "alice", "domain": None, "date_from": "2024-03-01", "date_to": None,
           "released": None, "released_by": None}  # fmt: skip
    (store / HOLDS_DIR).mkdir()
    (store / HOLDS_DIR / "20260102T030405000000Z-INC-7.json").write_text(json.dumps(old))
    assert [(h.case, h.file) for h in active_holds(store)] == [("INC-7", "20260102T030405000000Z-INC-7.json")]
    release_hold(store, "INC-7")
    assert not active_holds(store) and len(list((store / HOLDS_DIR).iterdir())) == 1


@pytest.mark.parametrize(("case", "good"), [(c, True) for c in GOOD_IDS] + [(c, False) for c in BAD_IDS])
def test_holds_and_the_audit_accept_the_same_case_ids(store: Path, case: str, good: bool) -> None:
    Store(store).init()
    accepted = []
    for check in (lambda: add_hold(store, case, "r"), lambda: audit.check_case(case, False)):
        try:
            check()
            accepted.append(True)
        except UsageError as exc:
            assert "invalid case id" in str(exc)
            accepted.append(False)
    assert accepted == [good, good]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"case": "bad id/../x"}, "invalid case id"),
        ({"reason": "  "}, "needs a reason"),
        ({"date_from": D(2024, 3, 5), "date_to": D(2024, 3, 1)}, "is after"),
        ({"case": "DUP"}, "already has an active hold"),
    ],
)
def test_bad_holds_are_refused(store: Path, kwargs: dict[str, object], message: str) -> None:
    build(store, rows())
    add_hold(store, "DUP", "first")
    args: dict[str, object] = {"case": "X-1", "reason": "r", **kwargs}
    with pytest.raises(UsageError, match=message):
        add_hold(store, **args)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="no active hold"):
        release_hold(store, "NOPE")


def test_a_hold_needs_a_store_and_waits_for_maintenance(store: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store"):
        add_hold(tmp_path / "missing", "X", "r")
    build(store, rows())
    with Store(store, "maintenance").lock(), pytest.raises(LockedError):
        add_hold(store, "X", "r", wait=0.3)  # a purge is running: the hold applies to the next one
    assert list_holds(store) == []


def test_held_rows_survive_the_purge_until_released(store: Path) -> None:
    data = rows()
    build(store, data)
    add_hold(store, "CASE-A", "test", domain=A, date_from=D(2024, 3, 3), date_to=D(2024, 3, 4))
    cfg = cfg_for(store)
    report = retention.purge(cfg, as_of=D(2026, 6, 1))
    held = [r for r in data if r[2] == A and D(2024, 3, 3) <= r[1] <= D(2024, 3, 4)]
    assert visible(store) == paths(held)  # only the held rows of the held partitions: the rest is rewritten
    assert report.held == {"CASE-A": len(held)}
    held_days = {str(c.date): c.action for c in report.partitions if c.holds}
    assert held_days == {"2024-03-03": "rewritten", "2024-03-04": "rewritten"}
    code, out, _ = invoke("purge", "--store", str(store), "--as-of", "2026-06-01")
    assert code == 0 and f"kept under hold CASE-A: {len(held)} rows" in out
    assert "active hold: CASE-A (a.example, 2024-03-03 to 2024-03-04)" in out
    code, out, _ = invoke("hold", "release", "CASE-A", "--store", str(store))
    assert code == 0 and "hold released: CASE-A" in out
    code, out, _ = invoke("hold", "list", "--store", str(store))
    assert code == 0 and "released" in out and f"released by {os_user()}" in out
    retention.purge(cfg, as_of=D(2026, 6, 1))
    assert visible(store) == paths([]) and not list((store / "pageviews").iterdir())


def test_a_hold_without_domain_keeps_whole_days_and_their_rejects(store: Path, tmp_path: Path) -> None:
    build(store, rows())
    today = retention.today()
    add_hold(store, "ALL", "everything in the range", date_from=D(2024, 3, 9))
    (tmp_path / "bad.log").write_text("not a log line\n")
    ingest_paths(store, [tmp_path / "bad.log"], fmt="vhost_combined", domain=None)
    report = retention.purge(cfg_for(store), as_of=today + dt.timedelta(days=3 * 365))
    assert set(by_date(store)) == {"2024-03-09", "2024-03-10"}
    assert [(c.action, c.holds) for c in report.rejects] == [("kept", {"ALL": 1})]
    assert list(store.glob("_rejects/date=*/*.parquet"))


def test_erasure_keeps_held_rows_and_says_so(store: Path) -> None:
    data = rows()
    build(store, data)
    add_hold(store, "LEGAL-1", "claim", domain=B, date_to=D(2024, 3, 2))
    report = erase(cfg_for(store), domain=B)
    kept = [r for r in data if r[2] == B and r[1] <= D(2024, 3, 2)]
    assert visible(store) == paths(r for r in data if r[2] == A) + paths(kept)
    assert report.held == {"LEGAL-1": len(kept)} and report.rows_deleted == 30 - len(kept)
    code, out, _ = invoke("erase", "--store", str(store), "--request", "DSR-1", "--domain", B)
    assert code == 0 and f"kept under hold LEGAL-1: {len(kept)} rows" in out and "deleted: 0 rows" in out


def test_releasing_a_hold_names_the_erasures_it_kept_rows_from(store: Path) -> None:
    """Found by review: nothing remembered an erasure request a hold had overridden, so its rows
    stayed for good once the hold was released. The release now names each such erasure (never the
    address), in its report, its --json, a warning and the audit trail; running it again erases."""
    data = rows()
    build(store, data)
    add_hold(store, "LEGAL-1", "claim", domain=B, date_to=D(2024, 3, 2))
    add_hold(store, "LEGAL-2", "other claim", domain=A)  # keeps nothing from that erasure
    kept = [r for r in data if r[2] == B and r[1] <= D(2024, 3, 2)]
    code, _, _ = invoke(
        "erase", "--store", str(store), "--request", "DSR-1", "--domain", B, "--to", "2024-03-05"
    )
    assert code == 0 and paths(kept) <= visible(store)
    code, out, err = invoke("hold", "release", "LEGAL-2", "--store", str(store))
    assert code == 0 and out.startswith("hold released:") and not err
    code, out, err = invoke("hold", "release", "LEGAL-1", "--store", str(store), "--json")
    assert code == 0
    (kept_from,) = json.loads(out)["erasures_kept"]
    assert (
        kept_from["rows_kept"] == len(kept) and kept_from["request"] == "DSR-1" and kept_from["case"] is None
    )
    assert (kept_from["domain"], kept_from["from"], kept_from["to"], kept_from["visitor"]) == (
        B,
        None,
        "2024-03-05",
        None,
    )
    (line,) = err.splitlines()
    assert line.startswith(f"hostlogs: warning: this hold kept {len(kept)} row(s) from the erasure of ")
    assert f"domain {B}; … to 2024-03-05; under request DSR-1; deletion record {kept_from['record']}" in line
    (outcome,) = [
        e
        for _, e, _ in audit.AuditLog(store).entries()
        if e and e.get("of") and e["command"] == "hold release" and e["case"] == "LEGAL-1"
    ]
    assert outcome["params"]["erasures_kept"] == [kept_from["record"]]
    # and after the release (its warnings long gone): the released hold names them in ``hold list``
    code, out, _ = invoke("hold", "list", "--store", str(store), "--json")
    listed = {h["case"]: h["erasures_kept"] for h in json.loads(out)}
    assert code == 0 and listed == {"LEGAL-1": [kept_from["record"]], "LEGAL-2": []}
    code, out, _ = invoke("hold", "list", "--store", str(store))
    assert f"kept rows from the erasures of deletion records {kept_from['record']}: run them again" in out
    # the field only informs: edited, it is printed masked on one line; damaged, it stops nothing
    (held_file,) = [f for f in (store / "_holds").iterdir() if json.loads(f.read_text())["case"] == "LEGAL-1"]
    held = json.loads(held_file.read_text())
    held_file.write_text(json.dumps({**held, "erasures_kept": ["203.0.113.77", "x\n\x1b[31m"]}))
    code, out, _ = invoke("hold", "list", "--store", str(store))
    assert code == 0 and "203.0.113.0/24, x\\n<0x1b>[31m: run them again" in out and "203.0.113.77" not in out
    for damaged in ("x", [1], {"a": 1}):
        held_file.write_text(json.dumps({**held, "erasures_kept": damaged}))
        code, out, err = invoke("hold", "list", "--store", str(store), "--json")
        assert code == 0 and {h["case"]: h["erasures_kept"] for h in json.loads(out)}["LEGAL-1"] is None, err
        assert invoke("purge", "--store", str(store), "--dry-run")[0] == 0
    held_file.write_text(json.dumps(held))
    # the same case held again later: that earlier erasure was told at the first release, not again
    add_hold(store, "LEGAL-1", "reopened", domain=B)
    assert release_hold(store, "LEGAL-1").erasures_kept == []
    code, _, _ = invoke(
        "erase", "--store", str(store), "--request", "DSR-1", "--domain", B, "--to", "2024-03-05"
    )
    assert code == 0 and not paths(kept) & visible(store)


def test_an_erasure_stopped_mid_way_is_named_at_release_with_the_rows_its_holds_kept(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review: the rows a hold kept were written only at an erasure's end, and the record
    ``recover`` completes lacked them, so the release of the hold named nothing."""
    from pipeline.lifecycle import deletions

    data = rows()
    build(store, data)
    add_hold(store, "LEGAL-1", "claim", domain=B, date_to=D(2024, 3, 2))
    kept = [r for r in data if r[2] == B and r[1] <= D(2024, 3, 2)]

    def stop(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the process stops after its last partition, before the record's end

    with monkeypatch.context() as m:
        m.setattr(deletions, "finish", stop)
        with pytest.raises(KeyboardInterrupt):
            erase(cfg_for(store), domain=B, under={"case": None, "request": "DSR-9"})
    assert invoke("compact", "--store", str(store))[0] == 0  # the next maintenance run completes the record
    (record,) = deletions.records(store)
    assert record["status"] == "interrupted"
    (kept_from,) = release_hold(store, "LEGAL-1").erasures_kept
    assert (kept_from["rows_kept"], kept_from["status"], kept_from["request"]) == (
        len(kept),
        "interrupted",
        "DSR-9",
    )


def test_a_release_reads_odd_deletion_records_without_failing(store: Path) -> None:
    """Found by review: a record with a time without zone (or a count that is no number) failed the
    release after its hold was released, and the erasures it kept were never named."""
    build(store, rows())
    add_hold(store, "LEGAL-2", "claim")
    folder = store / "_deletions"
    folder.mkdir(exist_ok=True)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(tzinfo=None).isoformat()
    records = {
        "naive": {"id": "a1", "operation": "erase", "status": "complete", "started": later,
                  "holds_honoured": [{"case": "LEGAL-2", "rows": 3}], "params": {"domain": A}},
        "odd": {"id": "b2", "operation": "erase", "status": "complete", "started": later,
                "holds_honoured": [{"case": "LEGAL-2", "rows": "many"}], "params": "?"},
        "legacy": {"id": "c3", "operation": "erase", "status": "running", "started": later,
                   "params": {"domain": B, "holds": ["LEGAL-2 (all domains, all dates)"]}},
        "other": {"id": "d4", "operation": "erase", "status": "complete", "started": later,
                  "holds_honoured": "none", "params": {"holds": 7}},
    }  # fmt: skip
    for n, (name, body) in enumerate(records.items()):
        (folder / f"20990101T00000{n}000000Z-{name}.json").write_text(json.dumps(body))
    (folder / "20990101T000009000000Z-broken.json").write_text("{not json")
    released = release_hold(store, "LEGAL-2")
    assert [(e["record"], e["rows_kept"]) for e in released.erasures_kept] == [
        ("a1", 3),
        ("b2", None),
        ("c3", None),
    ]
    assert len(released.unreadable) == 1 and "broken.json" in released.unreadable[0]
    assert not active_holds(store)
    # the release's hold file says so too: its erasures_kept lists only the records it could read
    (held,) = [h for h in list_holds(Store(store)) if h.case == "LEGAL-2"]
    assert held.erasures_kept == ("a1", "b2", "c3") and held.records_unread == tuple(released.unreadable)
    code, out, _ = invoke("hold", "list", "--store", str(store))
    assert code == 0 and "1 deletion record(s) could not be read at its release" in out, out
    code, out, _ = invoke("hold", "list", "--json", "--store", str(store))
    assert code == 0 and "broken.json" in json.loads(out)[0]["records_unread"][0]


def test_a_release_keeps_no_address_from_an_unread_record_line(tmp_path: Path) -> None:
    """The lines of unread deletion records name their location, which is the operator's path: it
    is kept masked in the hold file like every other text there."""
    store = tmp_path / "198.51.100.77" / "store"
    store.parent.mkdir()
    build(store, rows())
    add_hold(store, "LEGAL-3", "claim")
    (store / "_deletions").mkdir(exist_ok=True)
    (store / "_deletions" / "20990101T000009000000Z-broken.json").write_text("{not json")
    released = release_hold(store, "LEGAL-3")
    assert len(released.unreadable) == 1
    (held,) = [h for h in list_holds(Store(store)) if h.case == "LEGAL-3"]
    assert held.records_unread and "broken.json" in held.records_unread[0]
    assert all(b"198.51.100.77" not in f.read_bytes() for f in (store / HOLDS_DIR).iterdir())
    # a non-ASCII character just before an address: printed --json stays JSON (found by review:
    # masking the encoded text had broken the \\u00fc escape into "\\udb8::/48")
    (store / "_deletions" / "20990101T000010000000Z-\u00fc2001:db8::1.json").write_text("{")
    add_hold(store, "LEGAL-4", "claim")
    release_hold(store, "LEGAL-4")
    code, out, _ = invoke("hold", "list", "--json", "--store", str(store))
    held = {h["case"]: h for h in json.loads(out)}
    assert code == 0 and any("\u00fc2001:db8::/48" in line for line in held["LEGAL-4"]["records_unread"])


def test_hold_cli_add_and_json(store: Path) -> None:
    build(store, rows())
    code, out, _ = invoke(
        "hold",
        "add",
        "--store",
        str(store),
        "--case",
        "INC-1",
        "--reason",
        "r",
        "--from",
        "2024-03-01",
        "--json",
    )
    data = json.loads(out)
    assert (
        code == 0
        and data["case"] == "INC-1"
        and data["date_from"] == "2024-03-01"
        and data["released"] is None
    )
    code, _, err = invoke(
        "hold", "add", "--store", str(store), "--case", "INC-2", "--reason", "r", "--from", "March"
    )
    assert code == 2 and "is not a date" in err
    code, _, err = invoke("hold", "release", "INC-9", "--store", str(store))
    assert code == 2 and "no active hold for case 'INC-9'" in err
    code, out, _ = invoke("hold", "list", "--store", str(store), "--json")
    assert [Hold.from_json(h, "").case for h in json.loads(out)] == ["INC-1"]


def test_a_case_a_query_ran_under_can_be_held_from_the_command_line(store: Path) -> None:
    build(store, rows())
    s = ("--store", str(store))
    code, _, err = invoke("query", *s, "--case", "jira:SEC/17#2", "SELECT count(*) FROM pageviews")
    assert code == 0, err
    code, out, err = invoke("hold", "add", *s, "--case", "jira:SEC/17#2", "--reason", "r", "--json")
    assert code == 0 and json.loads(out)["case"] == "jira:SEC/17#2", err
    code, out, _ = invoke("hold", "release", "jira:SEC/17#2", *s)
    assert code == 0 and "released" in out
    cases = [e["case"] for e in audit.AuditLog(store).list() if e["command"].startswith(("query", "hold"))]
    assert cases == ["jira:SEC/17#2"] * 6  # query, hold add, hold release: started and outcome each


def test_a_damaged_privacy_record_is_refused_where_a_domain_is_resolved(tmp_path: Path) -> None:
    """Found by review: with the privacy record damaged, domains were resolved at /24 instead of the
    store's /16, so an erasure, an export or a hold of an IP-literal domain named a domain no row has,
    found nothing and reported success (the hold then kept nothing from the purge)."""
    from pipeline.store import layout
    from tests.cli.test_cli import invoke

    log = tmp_path / "a.log"
    log.write_text('198.51.100.7 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"\n')
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'store = "{tmp_path / "s"}"\n[privacy]\nipv4_prefix = 16\n')
    assert (
        invoke("ingest", str(log), "--config", str(cfg), "--domain", "203.0.113.7", "--final", "-q")[0] == 0
    )
    hold = ["hold", "add", "--case", "C-1", "--reason", "r", "--domain", "203.0.113.7", "--config", str(cfg)]
    assert invoke(*hold)[0] == 0
    (held,) = (tmp_path / "s").glob("_holds/*.json")
    assert json.loads(held.read_text())["domain"] == "203.0.0.0/16"  # the domain as stored
    held.unlink()
    record = tmp_path / "s" / layout.PRIVACY_RECORD
    record.write_bytes(record.read_bytes()[:-12])  # its last line cut short
    code, _, err = invoke(*hold)
    assert code == 6 and "damaged privacy record" in err, err
    # (erase and export refuse an IP-literal domain: its network is shared; or the record first)
    export = ["export", "--domain", "203.0.113.7", "--request", "R-2", "--output", str(tmp_path / "e.csv")]
    erase = ["erase", "--domain", "203.0.113.7", "--request", "R-1", "--dry-run"]
    for args in (erase, export):
        code, _, err = invoke(*args, "--config", str(cfg))
        refused = (code == 2 and "holds an IP address" in err) or (
            code == 6 and "damaged privacy record" in err
        )
        assert refused, (args, err)
    assert not (tmp_path / "e.csv").exists() and not list((tmp_path / "s").glob("_holds/*.json"))
