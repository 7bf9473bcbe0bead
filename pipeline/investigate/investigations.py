"""Ready-made investigations over the sandboxed views: ip, net, path, domain, ua, attacks.

``run`` is the library entry the CLI calls: one investigation, on a fresh sandbox, under the audit
trail (``investigate <kind>``, its scope and what it searched). The address and network ones live in
``addresses.py``; what they all share (scope, result, the two-pass plan) in ``scope.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import Config
from pipeline.errors import UsageError
from pipeline.investigate import detectors
from pipeline.investigate.addresses import address_condition, ip, net, net_condition
from pipeline.investigate.evidence import sql_str
from pipeline.investigate.result import QueryResult
from pipeline.investigate.sandbox import Sandbox
from pipeline.investigate.scope import (
    ROW_COLUMNS,
    Investigation,
    Scope,
    find_days,
    limit_note,
    match_of_days,
    matching_rows,
    span_facts,
    top_sql,
    top_table,
)
from pipeline.investigate.session import masker_of, with_connection
from pipeline.privacy import key_identity, keys
from pipeline.privacy.truncate import Truncator, domain_forms, stored_domain
from pipeline.store.commit import Store

# --- path, ua, domain ------------------------------------------------------------------------------


def path(con: Sandbox, scope: Scope, pattern: str, regex: bool = False) -> Investigation:
    """Requests whose path matches a glob (``/wp-*``, ``*/.env``) or, with ``regex``, a RE2 regex."""
    cond = f"regexp_matches(path, {sql_str(pattern)})" if regex else f"path GLOB {sql_str(pattern)}"
    return _simple(con, scope, "path", f"path {'~' if regex else ''}{pattern}", cond,
                   [("paths", ("path", "status")), ("client networks", ("client_net", "as_org"))],
                   {"pattern": pattern, "regex": regex})  # fmt: skip


def ua(con: Sandbox, scope: Scope, text: str, regex: bool = False) -> Investigation:
    """Requests whose user agent contains ``text`` (case-insensitive) or matches a RE2 regex."""
    cond = (
        f"regexp_matches(user_agent, {sql_str(text)})"
        if regex
        else f"contains(lower(user_agent), {sql_str(text.lower())})"
    )
    return _simple(con, scope, "ua", f"user agent {'~' if regex else ''}{text}", cond,
                   [("user agents", ("user_agent",)), ("client networks", ("client_net", "as_org"))],
                   {"pattern": text, "regex": regex})  # fmt: skip


def _simple(
    con: Sandbox, scope: Scope, kind: str, title: str, cond: str,
    tops: list[tuple[str, tuple[str, ...]]], audit: dict[str, Any],
) -> Investigation:  # fmt: skip
    # One scan: the matches' summary columns are read once into a materialised CTE (DuckDB spills it
    # past its memory limit) and the day counts and every top table are computed from it in the same
    # statement. Separate scans decoded ts and the grouped columns of every row group again for each
    # table; a temporary table cost ~0.4 s more to fill (100M rows, 3.9M matches: 5.9 → 3.0 → 2.4 s).
    cols = ", ".join(dict.fromkeys(c for _, by in tops for c in by))
    where = f"{scope.where()} AND ({cond})"
    parts = [
        "SELECT 0 AS part, date, count(*) AS requests, min(ts) AS first, max(ts) AS last FROM m GROUP BY date"
    ]
    parts += [f"({top_sql(by, 'm', select=f'{i} AS part, ')})" for i, (_, by) in enumerate(tops, 1)]
    sql = (
        f"WITH m AS MATERIALIZED (SELECT date, ts, {cols} FROM pageviews WHERE {where}) "
        + " UNION ALL BY NAME ".join(parts)
    )
    try:
        result = con.execute(sql, arrow=True)
    except UsageError as exc:
        raise UsageError(f"bad pattern: {exc}") from None
    assert result.table is not None
    days = _part(result.table, 0, ["date", "requests", "first", "last"], [("date", "ascending")])
    m = match_of_days(where, days.rows)
    tables = [
        (
            f"top {name}",
            _part(result.table, i, [*by, "requests", "first", "last"],
                  [("requests", "descending"), *((c, "ascending") for c in by)]),
        )
        for i, (name, by) in enumerate(tops, 1)
    ]  # fmt: skip
    rows = matching_rows(con, scope, m)
    return Investigation(kind, title, span_facts(m), tables, rows, limit_note(rows, scope), audit)


def _part(table: pa.Table, part: int, columns: list[str], order: list[tuple[str, str]]) -> QueryResult:
    """One part of a ``UNION ALL BY NAME`` result with its own columns, sorted again (a union does
    not promise to keep its inputs' order; nulls last, as DuckDB's ORDER BY)."""
    sub = table.filter(pc.equal(table.column("part"), part)).select(columns).sort_by(order)
    return QueryResult(columns, [tuple(r.values()) for r in sub.to_pylist()], sub)


Bucket = Literal["hour", "day"]


def domain(con: Sandbox, scope: Scope, name: str, by: Bucket = "hour") -> Investigation:
    """Timeline of one domain: requests, networks, errors per hour or day."""
    forms = domain_forms(stored_domain(name, Truncator()))  # (found by review: host:443 or a URL, 0 rows)
    m = find_days(con, scope, f"domain IN ({', '.join(sql_str(f) for f in forms)})")
    timeline = con.execute(
        f"SELECT date_trunc('{by}', ts) AS {by}, count(*) AS requests, "
        "count(DISTINCT client_net) AS networks, count(*) FILTER (status BETWEEN 400 AND 499) AS status_4xx, "
        "count(*) FILTER (status >= 500) AS status_5xx, "
        "count(*) FILTER (method = 'POST') AS posts, sum(bytes) AS bytes "
        f"FROM pageviews WHERE {m.where} GROUP BY 1 ORDER BY 1",
    )
    tables = [
        ("top paths", top_table(con, ("path",), m)),
        ("top networks", top_table(con, ("client_net", "as_org"), m)),
    ]
    return Investigation(
        "domain", f"domain {name} per {by}", span_facts(m), tables, timeline, [], {"domain": name, "by": by}
    )


def timeline(
    con: Sandbox, scope: Scope, by: Bucket = "hour", *, path: str | None = None, cidr: str | None = None,
    address: str | None = None, keystore: keys.KeyStore | None = None, masker: Truncator | None = None,
) -> Investigation:  # fmt: skip
    """The requests of a scope in time order, with counts per hour or day: what happened when.

    The scope is the dates and domain of ``scope`` narrowed by any of a path glob, a network (CIDR
    overlap with the stored networks) and one address (its pseudonym in each key period, as ``ip``
    finds it; the audit records the pseudonyms and the network, never the address).
    """
    if by not in ("hour", "day"):
        raise UsageError(f"timeline buckets are 'hour' or 'day', not {by!r}")
    conds: list[str] = []
    what: list[str] = []
    audit: dict[str, Any] = {"by": by}
    notes: list[str] = []
    if path:
        conds.append(f"path GLOB {sql_str(path)}")
        what.append(f"path {path}")
        audit["path"] = path
    if cidr:
        cond, network = net_condition(con, scope, cidr, masker or Truncator())
        conds.append(cond)
        what.append(f"network {network}")
        audit["network"] = network
    if address:
        if keystore is None:
            raise UsageError("a timeline of an address needs the pseudonym keys")
        cond, live, destroyed = address_condition(scope, address, keystore)
        conds.append(cond)
        what.append("one address (through its pseudonyms)")
        audit.update(
            periods=sorted(live),
            destroyed=destroyed,
            address_network=(masker or Truncator()).network(address),
        )
        if destroyed:
            notes.append(f"key destroyed for {', '.join(destroyed)}: no rows of those periods can be linked")
    m = find_days(con, scope, " AND ".join(conds) or "true")
    buckets = con.execute(
        f"SELECT date_trunc('{by}', ts) AS {by}, count(*) AS requests, "
        "count(DISTINCT client_net) AS networks, count(DISTINCT path) AS paths, "
        "count(*) FILTER (status BETWEEN 400 AND 499) AS status_4xx, "
        "count(*) FILTER (status >= 500) AS status_5xx, count(*) FILTER (method = 'POST') AS posts, "
        f"sum(bytes) AS bytes FROM pageviews WHERE {m.where} GROUP BY 1 ORDER BY 1",
    )
    rows = matching_rows(con, scope, m)
    title = f"timeline of {' and '.join(what) or 'every request'} per {by}"
    return Investigation(
        "timeline", title, span_facts(m), [(f"requests per {by}", buckets)], rows,
        limit_note(rows, scope) + notes, audit,
    )  # fmt: skip


# --- attacks ---------------------------------------------------------------------------------------


def attacks(con: Sandbox, scope: Scope, only: list[str] | None = None) -> Investigation:
    """Run the detector table (pipeline/investigate/detectors.py); rows carry the detector that matched."""
    chosen = [d for d in detectors.DETECTORS if not only or d.name in only]
    unknown = set(only or []) - set(detectors.BY_NAME)
    if unknown:
        raise UsageError(f"unknown detector {sorted(unknown)[0]!r}: {', '.join(detectors.BY_NAME)}")
    detect(con, scope, chosen)
    summary = con.execute(
        "SELECT detector, count(*) AS hits, count(DISTINCT client_net) AS networks, min(ts) AS first, "
        "max(ts) AS last, mode(path) AS typical_path FROM _hits GROUP BY 1",
    )
    by_name = {r[0]: r for r in summary.rows}
    table = QueryResult(
        ["detector", "hits", "networks", "first", "last", "typical_path", "description"],
        [
            (d.name, *(by_name.get(d.name, (d.name, 0, 0, None, None, None))[1:]), d.description)
            for d in chosen
        ],
    )
    rows = con.execute(
        f"SELECT detector, {ROW_COLUMNS} FROM _hits ORDER BY ts, detector LIMIT {int(scope.limit)}"
    )
    total = sum(r[1] for r in table.rows)
    facts = [("detectors run", str(len(chosen))), ("hits", f"{total:,}"),
             ("detectors with hits", ", ".join(r[0] for r in table.rows if r[1]) or "none")]  # fmt: skip
    return Investigation(
        "attacks", "attack signatures", facts, [("detectors", table)], rows, limit_note(rows, scope),
        {"detectors": [d.name for d in chosen]},
    )  # fmt: skip


def detect(con: Sandbox, scope: Scope, chosen: list[detectors.Detector]) -> int:
    """Fill the temporary table ``_hits`` (detector + row columns) on this connection; returns its size."""
    base = f"SELECT {ROW_COLUMNS}, {detectors.decoded_columns()} FROM pageviews WHERE {scope.where()}"
    parts = []
    for d in chosen:
        if d.rate is None:
            parts.append(f"SELECT '{d.name}' AS detector, {ROW_COLUMNS} FROM base WHERE {d.predicate}")
            continue
        # Sliding window per network: count the matching requests in [ts, ts + window]; a row is a hit
        # when some window starting at most `window` before it reaches the threshold.
        w = f"INTERVAL {int(d.rate.minutes)} MINUTE"
        parts.append(
            f"SELECT '{d.name}' AS detector, {ROW_COLUMNS} FROM ("
            f"SELECT *, max(CASE WHEN n >= {int(d.rate.min_count)} THEN 1 END) OVER (PARTITION BY client_net "
            f"ORDER BY ts RANGE BETWEEN {w} PRECEDING AND CURRENT ROW) AS dense FROM ("
            f"SELECT *, count(*) OVER (PARTITION BY client_net ORDER BY ts RANGE BETWEEN CURRENT ROW AND "
            f"{w} FOLLOWING) AS n FROM base WHERE {d.predicate} AND client_net IS NOT NULL)) WHERE dense = 1"
        )
    union = " UNION ALL ".join(parts) or f"SELECT NULL AS detector, {ROW_COLUMNS} FROM base WHERE false"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _hits AS WITH base AS ({base}) {union}")
    return int(con.execute("SELECT count(*) FROM _hits").rows[0][0])


# --- the audited entry -----------------------------------------------------------------------------

Kind = Literal["ip", "net", "path", "domain", "ua", "attacks", "timeline"]


def _keys(cfg: Config) -> keys.KeyStore:
    """The store's pseudonym keys: another store's directory would find none of an address's rows."""
    keystore = keys.KeyStore.configured(cfg)
    key_identity.check(Store(cfg.store), keystore)
    return keystore


# kind → the investigation on an open sandbox, given the config and its own arguments
WORK: dict[str, Callable[..., Investigation]] = {
    "ip": lambda con, scope, cfg, address: ip(con, scope, address, _keys(cfg), masker_of(cfg)),
    "net": lambda con, scope, cfg, cidr: net(con, scope, cidr, masker_of(cfg)),
    "path": lambda con, scope, cfg, pattern, regex=False: path(con, scope, pattern, regex),
    "domain": lambda con, scope, cfg, name, by="hour": domain(con, scope, name, by),
    "ua": lambda con, scope, cfg, text, regex=False: ua(con, scope, text, regex),
    "attacks": lambda con, scope, cfg, only=(): attacks(con, scope, list(only)),
    "timeline": lambda con, scope, cfg, by="hour", path=None, cidr=None, address=None: timeline(
        con,
        scope,
        by,
        path=path,
        cidr=cidr,
        address=address,
        keystore=_keys(cfg),
        masker=masker_of(cfg),
    ),
}


def run(
    cfg: Config, kind: Kind, scope: Scope, *, case: str, reason: str | None = None,
    warn: Callable[[str], None] | None = None, **args: Any,
) -> Investigation:  # fmt: skip
    """One investigation (``args``: its own, e.g. ``address`` for ip) audited under ``case`` (required)."""
    return with_connection(
        cfg, lambda con: WORK[kind](con, scope, cfg, **args), case=case, reason=reason,
        command=f"investigate {kind}", require_case=True, investigation=kind,
        params={"scope": scope.describe()}, describe=lambda inv: (inv.audit, len(inv.rows.rows)), warn=warn,
    )  # fmt: skip


__all__ = [
    "Investigation", "Scope", "attacks", "detect", "domain", "ip", "net", "path", "run", "timeline", "ua"
]  # fmt: skip
