"""Readable text for the admin API's JSON (pure functions: dict in, str out).

``table(headers, rows)`` aligns columns (numbers to the right); ``status_text`` renders a
``GET /api/status`` document; ``action_text`` the answer of a POST.
"""

from __future__ import annotations

from typing import Iterable, List, Sequence

_NUMBER = (int, float)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return ("%.3f" % value).rstrip("0").rstrip(".")
    if isinstance(value, (list, tuple)):
        return ",".join(_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return " ".join("%s=%s" % (k, _cell(v)) for k, v in sorted(value.items())) or "-"
    return "".join(c if c.isprintable() else "?" for c in str(value))


def table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    """Columns padded to their widest cell, numbers right-aligned, a dashed rule under the
    header; no trailing spaces; ``(none)`` under the header when there is no row."""
    rows = [list(r) for r in rows]
    texts = [[_cell(v) for v in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in texts:
        for i, t in enumerate(r):
            widths[i] = max(widths[i], len(t))
    right = [bool(rows) and all(isinstance(r[i], _NUMBER) and not isinstance(r[i], bool)
                                or r[i] is None for r in rows) for i in range(len(headers))]

    def line(cells):
        out = [c.rjust(w) if right[i] else c.ljust(w)
               for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(out).rstrip()

    lines = [line(list(headers)), "  ".join("-" * w for w in widths)]
    lines.extend(line(r) for r in texts)
    if not rows:
        lines.append("(none)")
    return "\n".join(lines)


def member_rows(pools: dict) -> List[list]:
    """One row per member: pool, member, state, in flight, weight, EWMA, ejections."""
    rows = []
    for pool_name in sorted(pools or {}):
        pool = pools[pool_name] or {}
        for m in pool.get("members", []):
            rows.append([pool_name, m.get("name"), m.get("state"), m.get("in_flight"),
                         m.get("weight"), m.get("ewma_ms"), m.get("ejections")])
    return rows


MEMBER_HEADERS = ("POOL", "MEMBER", "STATE", "IN-FLIGHT", "WEIGHT", "EWMA-MS", "EJECTIONS")


def status_text(doc: dict) -> str:
    """The status document as a few summary lines and a members table."""
    parts = []
    summary = []
    if doc.get("source"):
        summary.append(("config", doc["source"]))
    listeners = doc.get("listeners")
    if listeners:
        summary.append(("listeners", _names(listeners)))
    routes = doc.get("routes")
    if routes:
        summary.append(("routes", _names(routes)))
    workers = doc.get("workers")
    if isinstance(workers, dict):
        summary.append(("workers", "%s (pid %s)" % (workers.get("count", "?"),
                                                    _cell(workers.get("pid", workers.get("pids"))))))
    connections = doc.get("connections")
    if isinstance(connections, dict):
        busy = {k: v for k, v in sorted((connections.get("by_state") or {}).items()) if v}
        summary.append(("connections", "%s%s" % (_cell(connections.get("total")), (
            " (%s)" % _cell(busy)) if busy else "")))
    elif connections is not None:
        summary.append(("connections", _cell(connections)))
    cache = doc.get("cache")
    if isinstance(cache, dict):
        summary.append(("cache", _cache_line(cache)))
    elif "cache" in doc:
        summary.append(("cache", "off"))
    firewall = doc.get("firewall")
    if isinstance(firewall, dict):
        summary.append(("firewall", _cell(firewall)))
    spool = doc.get("spool")
    if isinstance(spool, dict):
        summary.append(("spool", _cell(spool)))
    if summary:
        width = max(len(k) for k, _ in summary)
        parts.append("\n".join("%s  %s" % (k.ljust(width), v) for k, v in summary))
    parts.append(table(MEMBER_HEADERS, member_rows(doc.get("pools") or {})))
    return "\n\n".join(parts)


def _names(items) -> str:
    if isinstance(items, dict):  # {"proxy": [...], "admin": [...]}: by role
        return "; ".join("%s: %s" % (role, _names(value) if isinstance(value, list)
                                     else _cell(value))
                         for role, value in sorted(items.items()) if value)
    out = []
    for item in items:
        if isinstance(item, dict):
            out.append(str(item.get("name") or item.get("description") or item.get("endpoint")
                           or _cell(item)))
        else:
            out.append(_cell(item))
    return ", ".join(out)


def _cache_line(cache: dict) -> str:
    bits = []
    for key in ("store", "size", "entries", "bytes", "hit_ratio"):
        if cache.get(key) is not None:
            value = cache[key]
            if key == "hit_ratio" and isinstance(value, _NUMBER):
                value = "%.1f%%" % (value * 100)
            bits.append("%s=%s" % (key, _cell(value)))
    return " ".join(bits) or _cell(cache)


def action_text(what: str, answer) -> str:
    """One line saying what a POST did, from its JSON answer."""
    if isinstance(answer, dict):
        if "purged" in answer:
            count = answer["purged"]
            return "%s: purged %s" % (what, "(uncounted)" if count == -1 else count)
        detail = " ".join("%s=%s" % (k, _cell(v)) for k, v in sorted(answer.items()))
        return "%s: %s" % (what, detail or "done")
    return "%s: %s" % (what, _cell(answer))


def stats_text(doc: dict) -> str:
    """The ``/api/stats`` counters as summary lines and a per-member table."""
    requests = doc.get("requests") or {}
    latency = doc.get("latency_ms") or {}
    cache = doc.get("cache") or {}
    firewall = doc.get("firewall") or {}
    lines = [
        "requests     %s (%s)" % (_cell(requests.get("total", 0)), " ".join(
            "%s=%s" % (k, _cell(requests.get(k, 0))) for k in ("1xx", "2xx", "3xx", "4xx", "5xx"))),
        "latency ms   p50=%s p90=%s p99=%s" % tuple(_cell(latency.get(q)) for q in
                                                    ("p50", "p90", "p99")),
        "cache        hits=%s misses=%s stale=%s ratio=%s" % (
            _cell(cache.get("hits", 0)), _cell(cache.get("misses", 0)),
            _cell(cache.get("stale", 0)), _cell(cache.get("ratio", 0))),
        "firewall     blocked=%s detected=%s" % (_cell(firewall.get("blocked", 0)),
                                                 _cell(firewall.get("detected", 0))),
        "rate-limited %s" % _cell(doc.get("rate_limited", 0)),
        "connections  %s" % _cell(doc.get("connections", 0)),
    ]
    rows = []
    members = doc.get("members") or {}
    for pool in sorted(members):
        for name in sorted(members[pool] or {}):
            m = members[pool][name] or {}
            rows.append([pool, name, m.get("state"), m.get("requests"), m.get("errors"),
                         m.get("inflight")])
    return "\n".join(lines) + "\n\n" + table(
        ("POOL", "MEMBER", "STATE", "REQUESTS", "ERRORS", "IN-FLIGHT"), rows)
