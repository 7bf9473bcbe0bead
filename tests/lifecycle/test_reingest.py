"""``ingest --reingest SOURCE``: a source read with the wrong domain is read again, replacing its rows.

Real stores, real files, the CLI through CliRunner; the crash cases stop the run at the commit (a
failing write at the store's one write seam) or between the two steps (the library's first step
alone), then check what a re-run leaves: the old rows or the new, never both or none.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
from pathlib import Path

import pytest

from pipeline.config import Config
from pipeline.errors import StoreError
from pipeline.lifecycle.reingest import unload_source
from tests.cli.test_cli import invoke
from tests.cli.test_errors import fail_store_writes
from tests.conftest import RECENT, RECENT_CLF

LINE = "203.0.113.{n} - - [" + RECENT_CLF + ':13:55:{n:02d} +0000] "GET /p{n} HTTP/1.1" 200 12'
LINE += ' "-" "curl/8.0"\n'  # (recent: its day must not pass the retention under the tests' purges)
CUSTODY_KEY = f"{RECENT:%Y-%m}.key"  # the custody key of its month


def log_file(tmp_path: Path, name: str = "a.log", n: int = 3, junk: int = 1) -> Path:
    path = tmp_path / name
    path.write_text("".join(LINE.format(n=i + 1) for i in range(n)) + "junk line\n" * junk)
    return path


def domains(store: Path) -> dict[str, int]:
    code, out, err = invoke(
        "query", "--store", str(store), "--case", "C-1", "--format", "json",
        "SELECT domain, count(*) AS n FROM pageviews GROUP BY domain ORDER BY domain",
    )  # fmt: skip
    assert code == 0, err
    rows = json.loads(out)
    return {r["domain"]: r["n"] for r in (rows if isinstance(rows, list) else [rows])}


def rejects(store: Path) -> int:
    out = invoke(
        "query", "--store", str(store), "--case", "C-1", "--format", "csv", "SELECT count(*) FROM rejects"
    )
    return int(out[1].split()[-1])


def ingest(store: Path, log: Path, domain: str, *extra: str) -> tuple[int, str, str]:
    return invoke("ingest", str(log), "--store", str(store), "--domain", domain, "--final", "-q", *extra)


def reingest(store: Path, log: Path, domain: str) -> tuple[int, str, str]:
    args = ("--store", str(store), "--domain", domain, "--final", "-q", "--case", "C-1")
    return invoke("ingest", "--reingest", str(log), *args)


def test_reingest_replaces_the_rows_of_a_wrong_domain(tmp_path: Path) -> None:
    store, log = tmp_path / "s", log_file(tmp_path)
    other = log_file(tmp_path, "other.log", n=2, junk=0)
    assert ingest(store, log, "wrong.example")[0] == 0
    assert ingest(store, other, "other.example")[0] == 0
    code, out, err = invoke(
        "ingest", "--reingest", str(log), "--store", str(store), "--domain", "right.example", "--final",
        "--request", "R-7", "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["reingest"] == {
        "source": str(log), "batches": 1, "files": data["reingest"]["files"], "rows_removed": 3,
        "rejects_removed": 1, "streams_reset": 1,
    }  # fmt: skip
    assert data["rows"] == 3 and data["rejects"] == {"unparseable": 1}
    assert domains(store) == {"other.example": 2, "right.example": 3}  # replaced, not added
    assert rejects(store) == 1  # the quarantined line too
    assert invoke("verify", "--store", str(store))[0] == 0
    assert invoke("ingest", str(log), str(other), "--store", str(store), "--final", "-q") == (0, "", "")
    assert domains(store) == {"other.example": 2, "right.example": 3}  # nothing read twice afterwards
    _, trail, _ = invoke("audit", "list", "--store", str(store), "--json")
    assert '"ingest --reingest"' in trail and '"R-7"' in trail


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "ingest --reingest needs --case CASE-ID or --request REQUEST-ID"),
        (["--case", "C-1", "--reingest", "nosuch.log"], 2, "no batch of the store was read from nosuch.log"),
        (["--case", "C-1", "--reingest", "-"], 2, "--reingest cannot re-read stdin"),
        (["--case", "C-1", "extra.log"], 2, "--reingest SOURCE reads that one source again"),
    ],
)
def test_reingest_refusals_change_nothing(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    store, log = tmp_path / "s", log_file(tmp_path)
    assert ingest(store, log, "wrong.example")[0] == 0
    args = args if "--reingest" in args else ["--reingest", str(log), *args]
    got, _, err = invoke("ingest", "--store", str(store), "--domain", "right.example", *args)
    assert got == code and message in err and err.count("\n") == 1, err
    assert domains(store) == {"wrong.example": 3}


def test_rows_merged_by_compaction_cannot_be_reingested(tmp_path: Path) -> None:
    store, log = tmp_path / "s", log_file(tmp_path)
    assert ingest(store, log, "wrong.example")[0] == 0
    assert ingest(store, log_file(tmp_path, "b.log", n=2, junk=0), "b.example")[0] == 0
    assert invoke("compact", "--store", str(store))[0] == 0
    code, _, err = invoke("ingest", "--reingest", str(log), "--store", str(store), "--case", "C-1")
    assert code == 6 and "can no longer be told from other sources'" in err and "nothing was changed" in err
    assert domains(store) == {"b.example": 2, "wrong.example": 3}


@pytest.mark.parametrize("where", ["pending.json", "_manifests/"], ids=["intent", "commit"])
def test_a_crash_at_the_commit_leaves_the_old_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    store, log = tmp_path / "s", log_file(tmp_path)
    assert ingest(store, log, "wrong.example")[0] == 0
    with monkeypatch.context() as mp:
        fail_store_writes(mp, errno.ENOSPC, only=where)  # the intent record, or the commit after it
        code, _, err = reingest(store, log, "right.example")
        assert code == 6 and "No space left on device" in err
    assert domains(store) == {"wrong.example": 3} and rejects(store) == 1  # old rows, all of them
    assert ingest(store, log, "right.example")[0] == 0  # a plain run adds nothing: nothing was reset
    assert domains(store) == {"wrong.example": 3}
    assert reingest(store, log, "right.example")[0] == 0
    assert domains(store) == {"right.example": 3} and rejects(store) == 1


def test_a_crash_between_unload_and_ingest_is_finished_by_the_next_run(tmp_path: Path) -> None:
    store, log = tmp_path / "s", log_file(tmp_path)
    assert ingest(store, log, "wrong.example")[0] == 0
    report = unload_source(Config(store=str(store)), str(log), case="C-1")  # then the process dies
    assert report.rows == 3 and report.rejects == 1
    assert domains(store) == {}  # none, until the next run ...
    assert ingest(store, log, "right.example")[0] == 0  # ... which reads the source from its start
    assert domains(store) == {"right.example": 3} and rejects(store) == 1
    assert invoke("verify", "--store", str(store))[0] == 0


def test_a_missing_store_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        unload_source(Config(store=str(tmp_path / "none")), "a.log", case="C-1")


def test_reingest_after_rotation_touches_only_the_file_it_names_and_can_be_repeated(tmp_path: Path) -> None:
    # Found by review: batches were matched by the name they were read as, so re-ingesting the new
    # access_log after a rotation also retired the rotated file's rows, which it never read again.
    import gzip

    store = tmp_path / "s"
    log = tmp_path / "access_log"
    log.write_text("".join(LINE.format(n=i + 1) for i in range(20)))
    assert ingest(store, log, "wrong.example")[0] == 0
    rotated = tmp_path / "access_log.1.gz"
    rotated.write_bytes(gzip.compress(log.read_bytes()))
    log.write_text(LINE.format(n=42))  # logrotate: moved, compressed, a new file under the old name
    assert (
        invoke("ingest", str(log), "--store", str(store), "--domain", "wrong.example", "--final", "-q")[0]
        == 0
    )
    assert domains(store) == {"wrong.example": 21}
    assert reingest(store, log, "right.example")[0] == 0  # only the new file's row
    assert domains(store) == {"right.example": 1, "wrong.example": 20}
    code, _, err = reingest(store, rotated, "right.example")  # the rotated file, by its content
    assert code == 0, err
    assert domains(store) == {"right.example": 21}
    code, _, err = reingest(store, rotated, "right.example")  # again: replaces, never refused or doubled
    assert code == 0, err
    assert domains(store) == {"right.example": 21}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("shorter", "it is shorter than where that batch was read"),
        ("rewritten", "it holds other bytes where that batch was read"),
        ("gone", "it cannot be read"),
        ("shorter, custody key gone", "it is shorter than where that batch was read"),  # by length
        ("rewritten at its end, custody key gone", "it holds other bytes where that batch ended"),
    ],
)
def test_a_file_that_no_longer_holds_what_was_read_is_refused(tmp_path: Path, change: str, why: str) -> None:
    # Found by an adversarial pass: an older, shorter copy restored under the name was re-ingested
    # by retiring all the old rows and reading back only what the copy still held, with exit 0.
    store, log = tmp_path / "s", log_file(tmp_path, n=40, junk=0)  # longer than its 1 KiB fingerprint
    assert ingest(store, log, "wrong.example")[0] == 0
    with log.open("a") as f:
        f.write("".join(LINE.format(n=i) for i in range(41, 61)))
    assert ingest(store, log, "wrong.example")[0] == 0  # a second batch
    text = log.read_text()
    if change.startswith("shorter"):
        log.write_text(text[: len(text) // 2])
        if "key" in change:
            (tmp_path / "s-keys" / "custody" / CUSTODY_KEY).unlink()
    elif change == "rewritten":
        log.write_text(text.replace("/p50 ", "/q50 "))
    elif change.startswith("rewritten at its end"):  # the stream key's digest of a batch's tail
        log.write_text(text.replace("/p60 ", "/q60 "))
        (tmp_path / "s-keys" / "custody" / CUSTODY_KEY).unlink()
    else:
        log.unlink()
    code, _, err = reingest(store, log, "right.example")
    assert code == 2 and why in err and "nothing was changed" in err and err.count("\n") == 1, err
    assert domains(store) == {"wrong.example": 60}  # every row still there


def test_a_file_that_grew_is_reingested_whole(tmp_path: Path) -> None:
    store, log = tmp_path / "s", log_file(tmp_path, n=3, junk=0)
    assert ingest(store, log, "wrong.example")[0] == 0
    with log.open("a") as f:
        f.write(LINE.format(n=9))
    code, _, err = reingest(store, log, "right.example")
    assert code == 0, err
    assert domains(store) == {"right.example": 4}


def test_a_file_moved_since_its_first_batches_is_refused_not_doubled(tmp_path: Path) -> None:
    # Found by review: after `mv a.log sub/a.log` ingest continued the stream under the new name;
    # re-ingesting sub/a.log retired only the batch read under that name and read the file from
    # byte 0 again, storing the first batch's rows twice.
    store, log = tmp_path / "s", log_file(tmp_path, n=3, junk=0)
    assert ingest(store, log, "x.example")[0] == 0
    (tmp_path / "sub").mkdir()
    moved = log.rename(tmp_path / "sub" / "a.log")
    with moved.open("a") as f:
        f.write(LINE.format(n=9))
    assert ingest(store, moved, "x.example")[0] == 0  # continues the stream
    code, _, err = reingest(store, moved, "y.example")
    assert code == 2 and "bytes 0-" in err and "rows twice; nothing was changed" in err, err
    assert domains(store) == {"x.example": 4}


def test_a_gzip_of_many_batches_is_reingested(tmp_path: Path) -> None:
    import gzip

    store, log = tmp_path / "s", tmp_path / "a.log"
    log.write_text("".join(LINE.format(n=i % 50 + 1).replace(" /p", f" /{i}p") for i in range(300)))
    code, _, err = invoke(
        "ingest", str(log), "--store", str(store), "--domain", "x.example", "--final", "-q",
        "--config", str(_small_blocks(tmp_path, store)),
    )  # fmt: skip
    assert code == 0, err
    rotated = tmp_path / "a.log.1.gz"
    rotated.write_bytes(gzip.compress(log.read_bytes()))
    log.unlink()
    code, _, err = reingest(store, rotated, "y.example")  # every batch checked, one pass over it
    assert code == 0, err
    assert domains(store) == {"y.example": 300}


def _small_blocks(tmp_path: Path, store: Path) -> Path:
    cfg = tmp_path / "small.toml"
    cfg.write_text(f'store = "{store}"\n[ingest]\nblock_bytes = 4096\nmax_line_bytes = 1024\n')
    return cfg


def test_a_batch_whose_quarantine_was_purged_can_still_be_reingested(tmp_path: Path) -> None:
    # Found by review: once the rejects' 30-day retention had deleted a batch's quarantine file,
    # re-ingesting its source was refused forever ("merged or rewritten by purge"); then, fixed
    # naively, a second re-ingest was, and a source whose lines were all rejected was not read again.
    store, log = tmp_path / "s", log_file(tmp_path, n=3, junk=1)
    assert ingest(store, log, "wrong.example")[0] == 0
    later = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=40)).isoformat()
    code, _, err = invoke("purge", "--store", str(store), "--as-of", later, "-q")
    assert code == 0, err
    assert rejects(store) == 0 and domains(store) == {"wrong.example": 3}  # rows kept (2 years)
    args = ("--store", str(store), "--final", "--case", "C-1", "--json")
    for domain, removed in (("right.example", 0), ("other.example", 1)):  # twice: replaced each time
        code, out, err = invoke("ingest", "--reingest", str(log), "--domain", domain, *args)
        assert code == 0, err
        assert domains(store) == {domain: 3} and rejects(store) == 1  # quarantined anew
        # what was taken out, as reported and audited: the purged quarantine is not counted
        assert json.loads(out)["reingest"]["rejects_removed"] == removed


def test_a_source_all_quarantined_and_purged_is_read_again(tmp_path: Path) -> None:
    store, log = tmp_path / "s", log_file(tmp_path, n=3, junk=0)
    code, _, _ = ingest(store, log, "x.example", "--format", "nginx_json")  # the wrong format
    assert code == 10 and domains(store) == {}
    later = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=40)).isoformat()
    assert invoke("purge", "--store", str(store), "--as-of", later, "-q")[0] == 0
    args = ("--store", str(store), "--domain", "x.example", "--final", "-q", "--case", "C-1")
    code, _, err = invoke("ingest", "--reingest", str(log), "--format", "combined", *args)
    assert code == 0, err
    assert domains(store) == {"x.example": 3}


def test_a_file_first_read_when_it_was_short_is_reingested(tmp_path: Path) -> None:
    # Found by review: a file's first read saw less than its 1 KiB fingerprint (a quiet vhost's
    # first cron run); its later batches carry the full fingerprint, and the two looked like a gap.
    store, log = tmp_path / "s", log_file(tmp_path, n=1, junk=0)
    assert ingest(store, log, "x.example")[0] == 0
    with log.open("a") as f:
        f.write("".join(LINE.format(n=i) for i in range(2, 40)))
    assert ingest(store, log, "x.example")[0] == 0
    code, _, err = reingest(store, log, "y.example")
    assert code == 0, err
    assert domains(store) == {"y.example": 39}


def test_a_file_edited_in_place_warns_and_can_be_replaced_as_it_is_now(tmp_path: Path) -> None:
    """Found by an adversarial pass: a log edited in place (``sed -i`` deleting one line) was read
    again from its start with exit 0 and no word under --quiet: every kept line stored twice, and
    --reingest refused to mend it (the file no longer holds what was read)."""
    store, log = tmp_path / "s", log_file(tmp_path, n=40, junk=0)  # longer than its 1 KiB fingerprint
    assert ingest(store, log, "x.example")[0] == 0
    log.write_text(log.read_text().replace(LINE.format(n=20), "") + LINE.format(n=41))
    code, _, err = ingest(store, log, "x.example")
    assert code == 0 and "differs from what was read" in err and "stored twice" in err, err
    assert domains(store) == {"x.example": 40 + 40}  # the warned-of doubles
    code, _, err = reingest(store, log, "x.example")
    assert code == 2 and "nothing was changed" in err, err
    code, _, err = invoke(
        "ingest", "--reingest", str(log), "--changed-in-place", "--store", str(store), "--domain", "x.example",
        "--final", "-q", "--request", "FIX-1",
    )  # fmt: skip
    assert code == 0, err
    assert domains(store) == {"x.example": 40}  # the file as it is now: 39 kept lines and the new one
    entries = [json.loads(line) for line in (store / "_audit" / "audit.jsonl").read_text().splitlines()]
    assert any((e.get("params") or {}).get("changed_in_place") for e in entries)  # the trail says so
    assert ingest(store, log, "x.example") == (0, "", "")  # and nothing more to read
    assert invoke("ingest", str(log), "--changed-in-place", "--store", str(store))[0] == 2


@pytest.mark.parametrize("case", ["gone", "a rotated copy begins as it does", "the copy is in an olddir"])
def test_changed_in_place_is_refused_where_the_rows_would_not_come_back(tmp_path: Path, case: str) -> None:
    """Found by review: on a file gone, --changed-in-place retired every row once read under its name;
    after copytruncate it retired the rows a rotated copy still holds (then skipped as an older copy)."""
    store, log = tmp_path / "s", log_file(tmp_path, n=40, junk=0)
    assert ingest(store, log, "x.example")[0] == 0
    if case == "gone":
        log.unlink()
        why = "it cannot be read"
    else:
        copy = tmp_path / "old" / "a.log.1" if "olddir" in case else tmp_path / "a.log.1"
        copy.parent.mkdir(exist_ok=True)
        copy.write_text(log.read_text())  # copytruncate's copy (logrotate's olddir: found by review)
        log.write_text("".join(LINE.format(n=i) for i in range(1, 16)) + LINE.format(n=50))
        assert ingest(store, log, "x.example")[0] == 0  # REWRITTEN, warned
        why = "a.log.1 begins as it does"  # (its folder is not named: the reason is the copy)
    code, _, err = invoke(
        "ingest", "--reingest", str(log), "--changed-in-place", "--store", str(store), "--domain", "x.example",
        "--final", "-q", "--request", "FIX-1",
    )  # fmt: skip
    assert code == 2 and why in err and "nothing was changed" in err, err
    assert sum(domains(store).values()) == (40 if case == "gone" else 56)


def test_changed_in_place_is_not_refused_for_another_sites_log_of_the_same_name(tmp_path: Path) -> None:
    """Found by review: logs/b.example/a.log (another vhost, beginning alike) was taken for a rotated copy."""
    store, log = tmp_path / "s", log_file(tmp_path, n=40, junk=0)
    assert ingest(store, log, "x.example")[0] == 0
    other = tmp_path / "b.example" / "a.log"
    other.parent.mkdir()
    other.write_text(log.read_text()[:1100] + LINE.format(n=55))
    log.write_text(log.read_text().replace(LINE.format(n=20), ""))
    assert ingest(store, log, "x.example")[0] == 0  # REWRITTEN, warned
    code, _, err = invoke(
        "ingest", "--reingest", str(log), "--changed-in-place", "--store", str(store), "--domain", "x.example",
        "--final", "-q", "--request", "FIX-1",
    )  # fmt: skip
    assert code == 0, err
    assert sum(domains(store).values()) == 39
