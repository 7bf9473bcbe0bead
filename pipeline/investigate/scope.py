"""What every investigation shares: its scope, its result, and the two-pass plan over the views.

Each investigation returns an ``Investigation``: facts and summary tables for the reader, the
matching rows, and the parameters that go into the audit log. Values are inlined as escaped SQL
literals rather than bound as parameters so that DuckDB sees constants and prunes ``date=``
partitions and row groups.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pipeline import rules
from pipeline.investigate.evidence import sql_str
from pipeline.investigate.result import QueryResult
from pipeline.investigate.sandbox import Sandbox
from pipeline.privacy.truncate import Truncator, domain_forms, stored_domain

ROW_COLUMNS = (
    "ts, domain, method, path, query, status, bytes, client_net, client_id, country, asn, as_org, "
    "user_agent, referrer, server"
)


@dataclass(frozen=True)
class Scope:
    """Filters every investigation takes: UTC dates (inclusive), one domain, a row limit."""

    start: dt.date | None = None
    end: dt.date | None = None
    domain: str | None = None
    limit: int = 1000

    def __post_init__(self) -> None:
        rules.check_range(self.start, self.end)  # one rule for every caller, CLI or Python

    def where(self) -> str:
        """SQL conditions; both ``date`` (prunes files) and ``ts`` (exact) bounds."""
        out = ["true"]
        if self.start:
            out += [f"date >= DATE '{self.start}'", f"ts >= TIMESTAMPTZ '{self.start} 00:00:00+00'"]
        if self.end:
            out.append(f"date <= DATE '{self.end}'")
            if self.end < dt.date.max:  # (9999-12-31 has no next day: the date bound is the whole bound)
                out.append(f"ts < TIMESTAMPTZ '{self.end + dt.timedelta(days=1)} 00:00:00+00'")
        if self.domain:
            forms = domain_forms(stored_domain(self.domain, Truncator()))  # /24, /48; both IDNA forms
            out.append(f"domain IN ({', '.join(sql_str(f) for f in forms)})")
        return " AND ".join(out)

    def overlaps(self, first: dt.date, last: dt.date) -> bool:
        return (self.start is None or last >= self.start) and (self.end is None or first <= self.end)

    def describe(self) -> dict[str, Any]:
        return {
            "from": str(self.start) if self.start else None,
            "to": str(self.end) if self.end else None,
            "domain": self.domain,
            "limit": self.limit,
        }


@dataclass(frozen=True)
class Investigation:
    kind: str
    title: str
    facts: list[tuple[str, str]]
    tables: list[tuple[str, QueryResult]]
    rows: QueryResult
    notes: list[str] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)


MAX_DAY_LIST = 120


@dataclass(frozen=True)
class Match:
    """Where the matching rows are: the predicate, narrowed to the UTC days that have any.

    DuckDB filters a column fast but decodes every projected column of every file it opens, even for
    three matching rows. So a first pass reads only the filter column(s) and the ``date`` partition;
    the rows and summaries are then read from the matching days only (hive partition pruning).
    """

    cond: str
    days: tuple[tuple[dt.date, int], ...]
    first: Any = None
    last: Any = None
    source: str = "pageviews"  # the view the rows are read from (``Sandbox.narrowed`` for one value)

    @property
    def where(self) -> str:
        return self.on([d for d, _ in self.days])

    def on(self, days: list[dt.date]) -> str:
        if not days:
            return "false"
        if len(days) > MAX_DAY_LIST:  # a long IN list costs more than the files it skips
            return f"({self.cond})"
        return f"date IN ({', '.join(f'DATE {chr(39)}{d}{chr(39)}' for d in days)}) AND ({self.cond})"

    def first_days(self, limit: int) -> list[dt.date]:
        """The earliest days that together hold at least ``limit`` matching rows."""
        out, n = [], 0
        for d, count in self.days:
            out.append(d)
            n += count
            if n >= limit:
                break
        return out


def find_days(con: Sandbox, scope: Scope, cond: str) -> Match:
    """The days holding rows that match ``cond``."""
    where = f"{scope.where()} AND ({cond})"
    per_day = con.execute(
        f"SELECT date, count(*), min(ts), max(ts) FROM pageviews WHERE {where} GROUP BY 1 ORDER BY 1"
    )
    return match_of_days(where, per_day.rows)


def match_of_days(where: str, per_day: list[tuple[Any, ...]], source: str = "pageviews") -> Match:
    """A ``Match`` from (date, requests, first ts, last ts) rows in date order."""
    return Match(
        where,
        tuple((d, int(n)) for d, n, _, _ in per_day),
        min((r[2] for r in per_day), default=None),
        max((r[3] for r in per_day), default=None),
        source,
    )


def match_and_top(
    con: Sandbox, scope: Scope, cond: str, by: str, n: int = 10, source: str = "pageviews"
) -> tuple[Match, QueryResult]:
    """``find_days`` and ``top_table`` in one scan (GROUPING SETS): selective conditions, few groups."""
    grouped = con.execute(
        f"SELECT grouping(date) AS g, date, {by}, count(*), min(ts), max(ts) FROM {source} "
        f"WHERE {scope.where()} AND ({cond}) GROUP BY GROUPING SETS ((date), ({by}))",
    ).rows
    per_day = sorted((r[1], int(r[3]), r[4], r[5]) for r in grouped if r[0] == 0)
    top = sorted((r for r in grouped if r[0] == 1), key=lambda r: (-r[3], str(r[2])))[:n]
    match = match_of_days(f"{scope.where()} AND ({cond})", per_day, source)
    table = QueryResult([by, "requests", "first", "last"], [(r[2], r[3], r[4], r[5]) for r in top])
    return match, table


def span_facts(m: Match) -> list[tuple[str, str]]:
    """From the first pass alone: no extra scan."""
    return [
        ("requests", f"{sum(n for _, n in m.days):,}"),
        ("days with requests", f"{len(m.days):,}"),
        ("first", str(m.first or "-")),
        ("last", str(m.last or "-")),
    ]


def top_table(con: Sandbox, by: tuple[str, ...], m: Match, n: int = 10) -> QueryResult:
    """Top ``n`` groups of the matching rows."""
    return con.execute(top_sql(by, f"{m.source} WHERE {m.where}", n))


def top_sql(by: tuple[str, ...], source: str, n: int = 10, select: str = "") -> str:
    """The top-``n`` table of ``by`` over ``source``: requests, first and last seen, ties by key."""
    cols = ", ".join(by)
    return (
        f"SELECT {select}{cols}, count(*) AS requests, min(ts) AS first, max(ts) AS last FROM {source} "
        f"GROUP BY {cols} ORDER BY requests DESC, {cols} LIMIT {n}"
    )


def matching_rows(con: Sandbox, scope: Scope, m: Match) -> QueryResult:
    return con.execute(
        f"SELECT {ROW_COLUMNS} FROM {m.source} WHERE {m.on(m.first_days(scope.limit))} "
        # every column: a total order, so the rows shown under the limit never depend on scan order
        f"ORDER BY {ROW_COLUMNS} LIMIT {int(scope.limit)}",
    )


def limit_note(rows: QueryResult, scope: Scope) -> list[str]:
    if len(rows.rows) >= scope.limit:
        return [f"only the first {scope.limit:,} matching rows are shown (--limit)"]
    return []
