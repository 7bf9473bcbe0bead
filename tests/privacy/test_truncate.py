"""``truncate.mask_value`` (one string, Python's ``re``) equals ``mask.mask_text`` (columns, polars).

The audit trail masks an investigator's SQL with the first; every stored column is masked with the
second. One pattern set, two regex engines: the same output for every text is what makes it one rule.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.privacy.mask import ClientMasker, mask_text
from pipeline.privacy.truncate import Truncator, mask_value
from tests.conftest import ROOT, ingest_paths

# Texts built from the pieces addresses, e-mails and their escapes are made of.
PIECES = st.sampled_from(
    ["203", ".", "0", "113", "7", ":", "::", "2001", "db8", "ff", "%", "2e", "3a", "%25", "40", "@", "x",
     "\\x", "\\u00", "&#", ";", "&#x", "a", "b.c", "example", ".org", " ", "/", "?", "=", "\uff10", "\u3002",
     "0x", "1", "9", "255", "[", "]", "-", "_", "user", "User", "ı", "İ", "\u212a", "ſ", "é", "ü"]
)  # fmt: skip


@given(st.lists(PIECES, max_size=24).map("".join))
@settings(max_examples=400, deadline=None)
def test_one_value_is_masked_like_a_column(text: str) -> None:
    assert mask_value(text, Truncator()) == mask_text(pl.Series([text], dtype=pl.String), ClientMasker())[0]


def test_examples() -> None:
    t = Truncator(24, 48)
    sql = "SELECT * FROM pageviews WHERE client_net = '203.0.113.7' AND path LIKE '%2001:db8::1%' -- a@b.org"
    assert mask_value(sql, t) == (
        "SELECT * FROM pageviews WHERE client_net = '203.0.113.0/24' AND path LIKE '%2001:db8::/48%' -- [email]"
    )
    assert mask_value("no address here", t) == "no address here"


def test_query_command_imports_no_column_engine(store: Path) -> None:
    """``hostlogs query`` is a short process whose time is mostly imports: it must not load polars
    (the #16 target is within 2x of a plain DuckDB script)."""
    ingest_paths(store, [ROOT / "sample_logs" / "other_vhosts_access.log"], fmt="vhost_combined")
    sql = "SELECT count(*) AS n, min(client_net) FROM pageviews WHERE path LIKE '/%'"
    code = (
        "import sys\n"
        "from pipeline.cli import main\n"
        "try:\n"
        f"    main(['query', '--store', {str(store)!r}, '--case', 'T-1', {sql!r}])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print('polars' in sys.modules, 'pipeline.store.parquet' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *result, imported = out.stdout.strip().splitlines()
    assert imported == "False False"
    assert any("/24" in line for line in result)  # the query ran and printed its row
