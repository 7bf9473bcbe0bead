"""No digest or identifier the store keeps can be matched by enumerating a row's /24 (issue #12 §1)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.lifecycle import retention
from pipeline.privacy.keys import KeyStore
from tests.conftest import ingest_paths, make_config

LINE = '203.0.113.{h} - - [10/Oct/2026:13:55:{s:02d} +0000] "GET /quiet HTTP/1.1" 200 5 "-" "cron/1"\n'
HOSTS = [7, 19, 77, 130, 201]


def _stored_text(store: Path) -> str:
    parts = []
    for p in sorted(store.rglob("*")):
        parts.append(p.name)
        if p.suffix == ".parquet":
            parts.append(str(pq.read_table(p).to_pylist()))
        elif p.is_file():
            parts.append(p.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def test_no_stored_value_is_a_hash_of_an_enumerated_candidate_line(tmp_path: Path) -> None:
    log, store = tmp_path / "access.log", tmp_path / "store"
    for i, h in enumerate(HOSTS):  # one line per run: every batch holds exactly one line
        with log.open("a") as f:
            f.write(LINE.format(h=h, s=i))
        assert ingest_paths(store, [log]).rows == 1
    stored = set(re.findall(r"[0-9a-f]{12,}", _stored_text(store)))
    scope = f"{log.resolve().parent}/access.log".encode()
    for i in range(len(HOSTS)):  # the attacker knows every field of the row but the host byte
        for cand in (LINE.format(h=h, s=i).encode() for h in range(256)):
            for data in (cand, cand.rstrip(b"\n"), scope + b"\0" + cand):
                for algo in ("sha256", "sha1", "md5", "blake2b", "blake2s", "sha512"):
                    full = hashlib.new(algo, data).hexdigest()
                    assert not any(full[:n] in stored for n in (12, 16, 32, len(full))), (algo, cand)


def test_a_custodian_proves_a_file_with_the_custody_key(tmp_path: Path) -> None:
    log, store = tmp_path / "access.log", tmp_path / "store"
    for i, h in enumerate(HOSTS):
        with log.open("a") as f:
            f.write(LINE.format(h=h, s=i))
        ingest_paths(store, [log])
    ok = CliRunner().invoke(main, ["keys", "prove", str(log), "--store", str(store)])
    assert ok.exit_code == 0 and f"{len(HOSTS)} of {len(HOSTS)} batch(es) verified" in ok.stdout
    copy = tmp_path / "evidence-copy.log"  # under another name: found by its (keyed) content
    copy.write_bytes(log.read_bytes())
    assert CliRunner().invoke(main, ["keys", "prove", str(copy), "--store", str(store)]).exit_code == 0
    original = log.read_bytes()
    log.write_bytes(original.replace(b"203.0.113.201", b"203.0.113.202"))  # one byte altered
    bad = CliRunner().invoke(main, ["keys", "prove", str(log), "--store", str(store)])
    assert bad.exit_code == 8 and "DIFFERS" in bad.stdout
    log.write_bytes(original)
    assert KeyStore(Path(f"{store}-keys")).destroy_before(dt.date(2026, 11, 1)) == ["2026-10"]
    after = CliRunner().invoke(main, ["keys", "prove", str(log), "--store", str(store)])
    assert "key destroyed" in after.stdout and "verified" not in after.stdout.split("\n")[0]


def test_a_legacy_store_is_migrated_without_reading_anything_twice(tmp_path: Path) -> None:
    """A store as an older hostlogs wrote it: unkeyed fingerprints in _state/ and manifests, source.sha256."""
    import json

    from pipeline.ingest import sources

    log, store = tmp_path / "access.log", tmp_path / "store"
    log.write_text("".join(LINE.format(h=h, s=i) for i, h in enumerate(HOSTS * 10)))
    ingest_paths(store, [log])
    head = log.read_bytes()[:1024]
    legacy = sources.legacy_fingerprint(sources.stream_scope(str(log)), head)
    manifest_path = store / "_manifests/files/000000000001.json"
    m = json.loads(manifest_path.read_text())
    src = m["source"]
    old_src = {k: src[k] for k in ("path", "fingerprint_bytes", "start", "end", "replaces")}
    old_src.update(fingerprint=legacy, sha256=hashlib.sha256(log.read_bytes()).hexdigest())
    manifest_path.write_text(json.dumps({**m, "source": old_src}))
    state = store / "_state/files/progress.json"
    p = json.loads(state.read_text())
    (st,) = p["streams"].values()
    p["streams"] = {legacy: {k: st[k] for k in ("fp_len", "offset", "path", "updated")}}
    state.write_text(json.dumps(p))
    import shutil

    shutil.rmtree(Path(f"{store}-keys") / "custody")  # an old key directory has no custody keys
    (store / "_state/keyed-digests.json").unlink()  # (written by the new ingest that made the store)
    (store / "_state/key-dir.json").unlink()  # (so is this)
    with log.open("a") as f:
        f.write(LINE.format(h=3, s=59))
    report = ingest_paths(store, [log])
    assert report.rows == 1, report.sources  # only the new line: the legacy stream was recognised
    text = _stored_text(store)
    assert (
        legacy not in text and old_src["sha256"] not in text and '"sha256": "' + old_src["sha256"] not in text
    )
    assert (store / "_state/keyed-digests.json").exists()
    ok = CliRunner().invoke(main, ["keys", "prove", str(log), "--store", str(store)])
    assert ok.exit_code == 0 and "2 of 2 batch(es) verified" in ok.stdout  # the migrated digest too


def test_purge_verify_flags_a_custody_key_left_past_the_horizon(tmp_path: Path) -> None:
    """A custody key outlives its period only by mistake: its digests would stay provable. Verify says so,
    and the purge destroys it."""
    store = tmp_path / "store"
    log = tmp_path / "access.log"
    log.write_text('192.0.2.7 - - [01/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"\n')
    ingest_paths(store, [log])
    cfg = make_config(store)
    KeyStore(Path(cfg.key_dir)).custody_key("2023-01")  # as a crashed or older purge could leave it
    as_of = dt.date(2026, 11, 2)
    report = retention.verify(cfg, as_of=as_of)
    assert "2023-01" in report.keys_not_destroyed and not report.ok
    retention.purge(cfg, as_of=as_of)
    assert KeyStore(Path(cfg.key_dir)).custody.status("2023-01") == "destroyed"
    assert retention.verify(cfg, as_of=as_of).ok
