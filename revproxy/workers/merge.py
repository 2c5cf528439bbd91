"""The admin documents of several workers as one (pure: JSON values in, JSON values out).

Every worker answers the same paths with documents of the same shape; the supervisor adds
them up. ``combine(values)`` merges the values found at one place in every document:

- numbers are summed (requests, bytes, connections, in-flight, cache entries...), except the
  keys below, which are not amounts: latency percentiles and times take the maximum (a
  percentile cannot be summed; the maximum is the worst worker, an upper bound of the whole),
  EWMA latencies their mean, ratios are recomputed from the summed ``hits`` and ``misses``
  beside them or in a ``metrics`` object beside them (else their mean), weights (relative
  shares every worker has from the same config) are the first worker's; limits and
  capacities (spool and cache sizes) are summed: each worker has its own, so the sum is the
  whole proxy's;
- booleans: true when true in every worker;
- objects are merged key by key (a key missing in some workers merges the others);
- strings equal everywhere stay; different ones (a member ``healthy`` in one worker and
  ``ejected`` in another) become the sorted distinct values joined by ``|``;
- lists of objects with a ``name`` (pool members) are merged name by name, other lists of
  objects of the same length element by element; other lists (listener descriptions, route
  names...) are the first worker's.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

MAX_KEYS = frozenset({"time", "p50", "p75", "p90", "p95", "p99", "p999", "max", "uptime",
                      "started", "since", "generation", "last_reload", "last_probe",
                      "ejected_until"})
MEAN_KEYS = frozenset({"ewma", "ewma_ms", "latency_ewma", "latency_ewma_ms", "mean",
                       "mean_ms"})
FIRST_KEYS = frozenset({"pid"})  # and every key ending in "weight"


def combine(values: Sequence[Any], key: Optional[str] = None) -> Any:
    """The merge of ``values`` (one per worker, None where a worker lacks it) found under
    ``key`` (None at the top)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    first = present[0]
    if isinstance(first, bool):
        return all(bool(v) for v in present)
    if _is_number(first):
        numbers = [v for v in present if _is_number(v)]
        return _numbers(numbers, key)
    if isinstance(first, dict):
        return _objects([v for v in present if isinstance(v, dict)])
    if isinstance(first, list):
        return _lists([v for v in present if isinstance(v, list)])
    if isinstance(first, str):
        distinct = sorted(set(v for v in present if isinstance(v, str)))
        return distinct[0] if len(distinct) == 1 else "|".join(distinct)
    return first


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(numbers, key):
    if key in MAX_KEYS:
        return max(numbers)
    if key in FIRST_KEYS or (key is not None and key.endswith("weight")):
        return numbers[0]
    if key in MEAN_KEYS or _is_ratio(key):
        return sum(numbers) / len(numbers)
    return sum(numbers)


def _is_ratio(key) -> bool:
    return key is not None and (key == "ratio" or key.endswith("_ratio"))


def _lists(lists):
    first = lists[0]
    if not first or not all(isinstance(item, dict) for items in lists for item in items):
        return first
    if all("name" in item for items in lists for item in items):
        names: List[Any] = []
        by_name: Dict[Any, list] = {}
        for items in lists:
            for item in items:
                if item["name"] not in by_name:
                    names.append(item["name"])
                    by_name[item["name"]] = []
                by_name[item["name"]].append(item)
        return [_objects(by_name[name]) for name in names]
    if len(set(len(items) for items in lists)) == 1:
        return [_objects(list(group)) for group in zip(*lists)]
    return first


def _objects(objects: List[Dict[str, Any]]) -> Dict[str, Any]:
    keys: List[str] = []
    for obj in objects:
        keys.extend(k for k in obj if k not in keys)
    merged = {key: combine([obj.get(key) for obj in objects], key) for key in keys}
    counts = merged.get("metrics") if isinstance(merged.get("metrics"), dict) else merged
    hits, misses = counts.get("hits"), counts.get("misses")  # beside the ratio, or in metrics
    if _is_number(hits) and _is_number(misses):
        for key in merged:
            if _is_ratio(key) and _is_number(merged[key]):
                merged[key] = hits / (hits + misses) if hits + misses else 0.0
    return merged


def merge_documents(answers, supervisor_pid: int) -> Dict[str, Any]:
    """``/api/status`` or ``/api/stats`` of the whole proxy from ``answers``: one
    ``(worker, document or None, error or None)`` per worker slot, ``worker`` a dict (index,
    pid, restarts...). The sums are at the top as in one process; ``workers`` holds the count,
    the supervisor's pid and each worker's own document (or its error)."""
    documents = [doc for _, doc, _ in answers if isinstance(doc, dict)]
    merged = combine(documents) if documents else {}
    detail = []
    for worker, doc, error in answers:
        entry = dict(worker)
        if error is not None:
            entry["error"] = error
        else:
            entry["document"] = doc
        detail.append(entry)
    merged["workers"] = {"count": len(answers), "up": len(documents), "pid": supervisor_pid,
                         "workers": detail}
    return merged


def merge_actions(answers):
    """``(status, document)`` of an action sent to every worker, from one ``(worker, status,
    document or None, error or None)`` per worker: the first worker's answer with
    ``workers`` listing each one's status and answer when every worker gave the same
    status; else 502 with an error naming the disagreement."""
    statuses = sorted(set(status for _, status, _, _ in answers), key=lambda s: (s is None, s or 0))
    detail = []
    for worker, status, doc, error in answers:
        entry = dict(worker, status=status)
        entry["answer" if error is None else "error"] = doc if error is None else error
        detail.append(entry)
    if len(statuses) == 1 and statuses[0] is not None:
        first = answers[0][2]
        result = dict(first) if isinstance(first, dict) else {"answer": first}
        result["workers"] = detail
        return statuses[0], result
    return 502, {"error": "the workers answered differently (statuses %s)"
                          % ", ".join(str(s) for s in statuses), "workers": detail}
