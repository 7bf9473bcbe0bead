"""Investigations of one address (through its keyed pseudonyms) and of a network (CIDR containment).

The audit log records the network and the pseudonyms searched, never the address.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

from pipeline.errors import UsageError
from pipeline.investigate.evidence import sql_str
from pipeline.investigate.result import QueryResult
from pipeline.investigate.sandbox import Sandbox
from pipeline.investigate.scope import (
    Investigation,
    Match,
    Scope,
    limit_note,
    match_and_top,
    matching_rows,
    span_facts,
)
from pipeline.privacy import digests, keys
from pipeline.privacy.truncate import Truncator

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_PROBED = 16  # stored networks probed one by one in bloom filters; more: scan every file

# --- ip --------------------------------------------------------------------------------------------


def ip(con: Sandbox, scope: Scope, address: str, keystore: keys.KeyStore, masker: Truncator) -> Investigation:
    """Exact rows of one address (its pseudonym in each key period) plus its truncated network."""
    lookups = digests.lookup_pseudonyms(address, keystore)
    network = masker.network(address)
    periods = {p: v for p, v in lookups.items() if scope.overlaps(*keys.period_bounds(p))}
    live = {p: v for p, v in periods.items() if isinstance(v, int)}
    destroyed = sorted(p for p, v in periods.items() if v == "destroyed")
    # client_id IN (...) is pushed into the scan; the period check then runs on the few rows left.
    ids = ", ".join(str(v) for v in live.values()) or "NULL"
    in_period = (
        "CASE client_id "
        + " ".join(
            f"WHEN {v} THEN date BETWEEN DATE '{a}' AND DATE '{b}'"
            for p, v in live.items()
            for a, b in [keys.period_bounds(p)]
        )
        + " ELSE false END"
        if live
        else "false"
    )
    # Pass 1 reads client_id and the date partition only; the period check runs here, per day.
    bounds = {v: keys.period_bounds(p) for p, v in live.items()}
    # only the files whose bloom filters may hold a pseudonym, each in its own period's days
    source = con.narrowed("client_id", [(v, *bounds[v]) for v in live.values()]) if live else "pageviews"
    pairs = con.execute(
        f"SELECT date, client_id, count(*), min(ts), max(ts) FROM {source} WHERE {scope.where()} "
        f"AND client_id IN ({ids}) GROUP BY 1, 2 ORDER BY 1",
    ).rows
    found = [r for r in pairs if bounds[r[1]][0] <= r[0] <= bounds[r[1]][1]]
    days: dict[dt.date, int] = {}
    per: dict[int, tuple[int, Any, Any]] = {}
    for day, cid, n, first, last in found:
        days[day] = days.get(day, 0) + n
        old = per.get(cid)
        per[cid] = (n, first, last) if old is None else (old[0] + n, min(old[1], first), max(old[2], last))
    shown = Match("", tuple(sorted(days.items())), source=source)
    m = _exact_rows_match(scope, shown, found, pairs, in_period)
    table_rows: list[tuple[Any, ...]] = []
    for p, v in sorted(periods.items()):
        if isinstance(v, int):
            n, first, last = per.get(v, (0, None, None))
            table_rows.append((p, "key present", v, n, first, last))
        else:
            table_rows.append(
                (p, "KEY DESTROYED: rows of this period cannot be linked", None, None, None, None)
            )
    periods_table = QueryResult(["period", "key", "pseudonym", "requests", "first", "last"], table_rows)
    rows = matching_rows(con, scope, m)
    notes = limit_note(rows, scope)
    if destroyed:
        notes.append(
            f"key destroyed for {', '.join(destroyed)}: those periods were purged; no exact rows there"
        )
    if not periods:
        notes.append("no pseudonym key covers the scope: pseudonyms off, or no data ingested for it")
    exact = sum(r[3] or 0 for r in table_rows)
    facts = [("address", address), ("truncated network", network or "-"), ("exact requests", f"{exact:,}")]
    tables = [("pseudonym per key period", periods_table)]
    if network:
        every_day = (dt.date.min, dt.date.max)
        near = con.narrowed("client_net", [(network, *every_day)])
        nm, top_paths = match_and_top(con, scope, f"client_net = {sql_str(network)}", "path", source=near)
        span = dict(span_facts(nm))
        facts.append(("requests from the network", f"{span['requests']} ({span['first']} – {span['last']})"))
        tables.append((f"network {network}: top paths", top_paths))
    return Investigation(
        "ip", f"address {address}", facts, tables, rows, notes,
        # the periods searched, not the pseudonyms: in the store's own trail they would link the
        # visitor's months without the keys, and past their destruction (found by review)
        audit={"network": network, "periods": sorted(live), "destroyed": destroyed},
    )  # fmt: skip


def _exact_rows_match(
    scope: Scope, m: Match, found: list[tuple[Any, ...]], pairs: list[tuple[Any, ...]], in_period: str
) -> Match:
    """The rows' predicate for the days shown: only the pseudonyms pass 1 found on those days.

    Pass 1 listed every (day, pseudonym) pair in scope, so on those days ``client_id IN (found)`` is
    exact unless a pseudonym also turned up outside its own period there (a 64-bit collision): only
    then is the per-period check needed. A short IN list keeps DuckDB's bloom-filter pruning (the
    CASE form made it read every row group of those days: 0.31 → 0.16 s on 730 daily files).
    """
    shown = set(m.first_days(scope.limit))
    ids = sorted({r[1] for r in found if r[0] in shown})
    cond = f"{scope.where()} AND client_id IN ({', '.join(map(str, ids)) or 'NULL'})"
    valid = set(map(tuple, found))
    if any(r[0] in shown and tuple(r) not in valid for r in pairs):
        cond += f" AND {in_period}"
    return Match(cond, m.days, source=m.source)


# --- net -------------------------------------------------------------------------------------------


def parse_network(text: str) -> Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        # (the value is not repeated: errors are audited, and 3405803787/32 is an address in another form)
        why = "not a network (expected CIDR such as 198.51.0.0/16; the value is not repeated)"
        raise UsageError(why) from None


def _prefilter(q: Network, masker: Truncator) -> str:
    """A cheap text filter that keeps every stored network that can overlap ``q``."""
    if q.version == 4:
        octets = min(q.prefixlen, masker.ipv4_prefix) // 8
        head = ".".join(str(q.network_address).split(".")[:octets])
        return "client_net NOT LIKE '%:%'" + (
            f" AND starts_with(client_net, {sql_str(head + '.')})" if head else ""
        )
    first = int(q.network_address) >> 112
    if min(q.prefixlen, masker.ipv6_prefix) >= 16 and first:
        return f"starts_with(client_net, {sql_str(f'{first:x}:')})"
    return "client_net LIKE '%:%'"


def net(con: Sandbox, scope: Scope, cidr: str, masker: Truncator) -> Investigation:
    """Rows whose stored client network overlaps ``cidr`` (inside it, or containing it)."""
    q = parse_network(cidr)
    # Pass 1 reads the network and the date only (a dictionary column: cheap over years); the
    # summary and the rows then read only the days holding a matching network (one network over a
    # year of 20M rows: 1.6 → 0.7 s; the scan decodes every column it projects, matching or not).
    per_day = con.execute(
        f"SELECT date, client_net, count(*) FROM pageviews WHERE {scope.where()} AND {_prefilter(q, masker)} "
        "GROUP BY 1, 2",
    ).rows
    nets = {n for _, n, _ in per_day if _overlaps(n, q)}
    days: dict[dt.date, int] = {}
    for day, n, count in per_day:
        if n in nets:
            days[day] = days.get(day, 0) + int(count)
    # the rows and the summary read only the files whose bloom filters may hold a matching network
    few = len(nets) <= MAX_PROBED
    source = con.narrowed("client_net", [(n, dt.date.min, dt.date.max) for n in nets]) if few else "pageviews"
    where = f"{scope.where()} AND client_net IN {_in_list(sorted(nets))}"
    m = Match(where, tuple(sorted(days.items())), source=source)
    candidates = con.execute(
        "SELECT client_net, count(*) AS requests, count(DISTINCT client_id) AS pseudonyms, "
        "count(DISTINCT domain) AS domains, mode(asn) AS asn, mode(as_org) AS as_org, "
        "mode(country) AS country, "
        f"min(ts) AS first, max(ts) AS last FROM {source} WHERE {m.where} GROUP BY 1 ORDER BY requests DESC",
    )
    matched = candidates.rows
    coarser = sorted({r[0] for r in matched if ipaddress.ip_network(r[0]).prefixlen < q.prefixlen})
    rows = matching_rows(con, scope, m)
    notes = limit_note(rows, scope)
    if coarser:
        notes.append(
            f"{q} is smaller than the stored networks: matched at "
            f"/{ipaddress.ip_network(coarser[0]).prefixlen} "
            f"granularity ({', '.join(coarser)}); those rows may come from any address in it"
        )
    facts = [
        ("network", str(q)),
        ("matching stored networks", f"{len(matched):,}"),
        ("requests", f"{sum(r[1] for r in matched):,}"),
    ]
    summary = QueryResult(candidates.columns, matched[:50])
    return Investigation(
        "net", f"network {q}", facts, [("stored networks (top 50)", summary)], rows, notes,
        audit={"network": str(q), "matched_networks": len(matched)},
    )  # fmt: skip


# --- conditions for the timeline -------------------------------------------------------------------


def address_condition(
    scope: Scope, address: str, keystore: keys.KeyStore
) -> tuple[str, dict[str, int], list[str]]:
    """SQL matching the rows of ``address``: its pseudonym, each only inside its own key period.

    Returns (condition, pseudonym per period searched, periods whose key is destroyed).
    """
    lookups = digests.lookup_pseudonyms(address, keystore)
    periods = {p: v for p, v in lookups.items() if scope.overlaps(*keys.period_bounds(p))}
    live = {p: v for p, v in periods.items() if isinstance(v, int)}
    destroyed = sorted(p for p, v in periods.items() if v == "destroyed")
    cond = " OR ".join(
        f"(client_id = {int(v)} AND date BETWEEN DATE '{a}' AND DATE '{b}')"
        for p, v in live.items()
        for a, b in [keys.period_bounds(p)]
    )
    return f"({cond or 'false'})", live, destroyed


def net_condition(con: Sandbox, scope: Scope, cidr: str, masker: Truncator) -> tuple[str, str]:
    """SQL matching the rows whose stored network overlaps ``cidr``; (condition, the network)."""
    q = parse_network(cidr)
    stored = con.execute(
        f"SELECT DISTINCT client_net FROM pageviews WHERE {scope.where()} AND {_prefilter(q, masker)}"
    ).rows
    nets = sorted(n for (n,) in stored if _overlaps(n, q))
    return f"client_net IN {_in_list(nets)}", str(q)


def _overlaps(stored: str | None, q: Network) -> bool:
    if stored is None:
        return False
    try:
        n = ipaddress.ip_network(stored)
    except ValueError:
        return False
    return n.version == q.version and (n.subnet_of(q) or q.subnet_of(n))  # type: ignore[arg-type]


def _in_list(values: list[str]) -> str:
    return "(" + ", ".join(sql_str(v) for v in values) + ")" if values else "(NULL)"
