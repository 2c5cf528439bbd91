"""What changed between two ``Config`` snapshots: pure, for the reload log and its decisions.

``pool_change`` decides what a reload does with a pool's objects; ``describe_changes`` says in
words what a reload changes, one line per thing (listener, pool, member, route, section key).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import List

from revproxy.config.model import Config, Pool

SAME, MEMBERS, REBUILD = "same", "members", "rebuild"

# Sections compared key by key (lists of what each section's changed keys are).
_SECTIONS = ("server", "limits", "buffering", "logging", "cache", "demo", "admin", "tls",
             "compression")
_LISTS = {("server", "listen"), ("admin", "listen")}  # described as added / removed entries


def pool_change(old: Pool, new: Pool) -> str:
    """``SAME`` (identical), ``MEMBERS`` (only members or weights differ: the pool object is
    kept and its membership updated) or ``REBUILD`` (another setting differs)."""
    if old == new:
        return SAME
    if replace(old, members=new.members, weights=new.weights) == new:
        return MEMBERS
    return REBUILD


def changed_fields(old, new) -> List[str]:
    """Names of the dataclass fields whose values differ, in declaration order."""
    return [f.name for f in fields(old) if getattr(old, f.name) != getattr(new, f.name)]


def describe_changes(old: Config, new: Config) -> List[str]:
    """One line per change from ``old`` to ``new``; empty when nothing changed."""
    lines = []
    lines += _list_changes("listener", old.server.listen, new.server.listen)
    lines += _list_changes("admin listener", old.admin.listen, new.admin.listen)
    lines += _pool_changes(old, new)
    lines += _route_changes(old, new)
    lines += _ip_list_changes(old, new)
    for section in _SECTIONS:
        before, after = getattr(old, section), getattr(new, section)
        keys = [k for k in changed_fields(before, after) if (section, k) not in _LISTS]
        if keys:
            lines.append("[%s] changed: %s" % (section, ", ".join(
                "%s %s -> %s" % (k, _short(getattr(before, k)), _short(getattr(after, k)))
                for k in keys)))
    return lines


def _ip_list_changes(old: Config, new: Config) -> List[str]:
    """Added, removed and changed ``[[ip_lists]]`` (their files are re-read on every
    reload anyway: the build logs each list's entry count)."""
    before = {spec.name: spec for spec in old.ip_lists}
    after = {spec.name: spec for spec in new.ip_lists}
    lines = _list_changes("ip list", list(before), list(after))
    lines += ["ip list %s changed: %s" % (name, ", ".join(changed_fields(before[name], spec)))
              for name, spec in after.items() if name in before and before[name] != spec]
    return lines


def _list_changes(what, old, new):
    lines = ["%s added: %s" % (what, item) for item in new if item not in old]
    lines += ["%s removed: %s" % (what, item) for item in old if item not in new]
    return lines


def _pool_changes(old: Config, new: Config) -> List[str]:
    before = {pool.name: pool for pool in old.pools}
    after = {pool.name: pool for pool in new.pools}
    lines = []
    for name, pool in after.items():
        if name not in before:
            lines.append("pool added: %s (%s)" % (name, ", ".join(pool.members)))
            continue
        previous = before[name]
        kind = pool_change(previous, pool)
        if kind == SAME:
            continue
        lines += ["pool %s: member added: %s" % (name, m)
                  for m in pool.members if m not in previous.members]
        lines += ["pool %s: member removed: %s" % (name, m)
                  for m in previous.members if m not in pool.members]
        lines += ["pool %s: weight of %s %d -> %d" % (name, m, previous.weight_of(m), pool.weight_of(m))
                  for m in pool.members
                  if m in previous.members and previous.weight_of(m) != pool.weight_of(m)]
        if kind == REBUILD:
            keys = [k for k in changed_fields(previous, pool) if k not in ("members", "weights")]
            lines.append("pool %s changed: %s (rebuilt: its balancer state and idle connections "
                         "start afresh)" % (name, ", ".join(keys)))
    lines += ["pool removed: %s" % name for name in before if name not in after]
    return lines


def _route_changes(old: Config, new: Config) -> List[str]:
    before = {route.name: route for route in old.routes}
    after = {route.name: route for route in new.routes}
    lines = []
    for name, route in after.items():
        if name not in before:
            lines.append("route added: %s -> pool %s" % (name, route.pool))
        elif before[name] != route:
            lines.append("route %s changed: %s" % (name, ", ".join(changed_fields(before[name], route))))
    lines += ["route removed: %s" % name for name in before if name not in after]
    kept_old = [r.name for r in old.routes if r.name in after]
    kept_new = [r.name for r in new.routes if r.name in before]
    if kept_old != kept_new:
        lines.append("routes reordered: %s" % ", ".join(kept_new))
    return lines


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
