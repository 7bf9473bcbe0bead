"""Crafted values cost the address masker work in proportion to their length, and stay masked.

A request, referrer or user agent is attacker-controlled: a few KiB of "1:2:1:2:..." or
"1.1.1.1:1.1.1.1:..." took minutes per line (the IPv6 piece search tried every pair of colons),
and 16 KiB of "%40%40..." seconds in the investigator-SQL masker (Python's backtracking engine).
The work is counted, not timed: Python-level calls (builtins included) at 4 KiB and 16 KiB of the
same pattern must grow about 4x, not 16x.
"""

from __future__ import annotations

import cProfile
import pstats
import re
from pathlib import Path

import pytest

from pipeline.privacy import truncate
from pipeline.privacy.addresses import mask_addresses
from pipeline.privacy.truncate import PYTHON_RE_LIMIT, Truncator, mask_value
from tests.conftest import ingest_paths, ip_tokens, store_rejects, store_rows
from tests.ingest.test_third_party_logs import written_texts

# The patterns that were superlinear, and mixes of them (every address-like class: IPv6 runs, dotted
# runs, escapes that decode to either, zone-like and bracketed forms, runs just under the whole-run limit).
CRAFTED = [
    "1:2:", "::", "1::2::", "ff:", "1:", ":1.2", "%3a1", "1.2.3:", "1.1.1.1:", "1::x:", "999.", "[1::",
    "1:2:3:4:5:6:7:8:9:", "1:2:3 1.2.3.4 ", "1.2.3.4 1:2::3 ", "%31%2e", "0x1.", "&#49;.", "\\x31.",
    "1:2:" * 31 + "1 ", "1::2:" * 25 + " ", "1:2:3:4:5:6:7:" * 9 + " ", "0000:" * 25 + " ", "999." * 40 + " ",
]  # fmt: skip


def calls(text: str) -> int:
    masker = Truncator()
    profile = cProfile.Profile()
    profile.runcall(mask_addresses, text, masker.network_of)
    return int(pstats.Stats(profile).total_calls)  # type: ignore[attr-defined]


def repeated(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


@pytest.mark.parametrize("unit", CRAFTED)
def test_masking_work_grows_linearly_with_a_crafted_value(unit: str) -> None:
    small, large = calls(repeated(unit, 4096)), calls(repeated(unit, 16384))
    assert large <= 6 * max(small, 1), (unit, small, large)


@pytest.mark.parametrize("unit", ["1:2:", "1.1.1.1:", "::1:", "999.", "%3a1"])
def test_an_address_inside_a_crafted_value_is_still_masked(unit: str) -> None:
    text = repeated(unit, 8000) + " 203.0.113.7 2001:db8:cafe::17 " + repeated(unit, 8000)
    masked = mask_addresses(text, Truncator().network_of)
    assert "203.0.113.7" not in masked and "2001:db8:cafe::17" not in masked
    assert "203.0.113.0/24" in masked and "2001:db8:cafe::/48" in masked


def test_a_run_too_long_for_one_address_is_masked_whole() -> None:
    run = "1:2:" * 40 + "203.0.113.7"
    assert mask_addresses(f"x {run} y", Truncator().network_of) == "x [ipv6] y"
    # one address or two run together keep their network
    assert mask_addresses("x 2001:db8::1:203.0.113.7 y", Truncator().network_of) == "x 2001:db8::/48 y"


def test_long_values_never_reach_pythons_backtracking_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over ``PYTHON_RE_LIMIT`` characters, ``mask_value`` uses polars' engine (the column masker's,
    linear); the result is the same as the short path's for the same content."""
    content = "WHERE referrer = 'josé@example.com' AND path LIKE '/u/%40x' OR ip = '203.0.113.7'"
    short = mask_value(content, Truncator())
    padding = " " * (PYTHON_RE_LIMIT + 1)

    def refuse(pattern: str) -> re.Pattern[str]:
        raise AssertionError("a long value reached Python's re")

    monkeypatch.setattr(truncate, "_compiled", refuse)
    assert mask_value(content + padding, Truncator()) == short + padding
    assert "[email]" in short and "203.0.113.0/24" in short and "josé" not in short
    crafted = repeated("%40", 16384)
    assert mask_value(crafted, Truncator()) == crafted  # no e-mail: '%40' needs letters around it


def test_a_log_of_crafted_requests_ingests_and_leaks_nothing(tmp_path: Path) -> None:
    """8 KB crafted paths, referrers, user agents and garbage lines: ingested (such a log did not
    finish in hours before), and nothing the tool wrote holds a client address."""
    lines, clients = [], set()
    for i in range(120):
        blob = repeated(CRAFTED[i % len(CRAFTED)], 8000 - i)
        kind, client = i % 4, f"203.0.113.{i + 1}"
        path = "/" + (blob if kind == 0 else "x")
        ref = blob if kind == 1 else "-"
        agent = blob if kind == 2 else "Mozilla/5.0"
        line = (
            f'ex.com:80 {client} - - [05/Dec/2026:10:00:{i % 60:02d} +0000] "GET {path} HTTP/1.1" '
            f'200 5 "{ref}" "{agent}"'
        )
        lines.append(line if kind != 3 else f"{blob} broken {client}")
        clients.add(client)
    log = tmp_path / "crafted.log"
    log.write_text("\n".join(lines) + "\n")
    store = tmp_path / "store"
    report = ingest_paths(store, [log], fmt="vhost_combined", domain=None, max_reject_rate=1.0)
    rows, rejects = store_rows(store), store_rejects(store)
    assert report.lines == 120 and report.rows == len(rows) >= 85 and len(rows) + len(rejects) == 120
    for file, text in written_texts(store):
        assert not {str(a) for a in ip_tokens(text)} & clients, file
