"""``/metrics`` of several workers as one exposition (parsing and rendering are
``prometheus_client``'s; the arithmetic here is pure).

Each worker's text is parsed with ``text_string_to_metric_families``; samples with the same
name and labels are combined:

- counters, histogram buckets, ``_count`` and ``_sum`` (histograms and summaries) and
  untyped samples are summed: the proxy as a whole served what its workers served;
- ``_created`` samples take the earliest value, summary quantiles the maximum (a quantile
  cannot be summed: the worst worker bounds the whole);
- gauges are summed (they are amounts: connections, in-flight requests, queue sizes, spool
  and cache bytes and entries: each worker has its own), except gauges whose name says they
  are a state, a setting, a time or a latency (``_up``, ``_state``, ``_weight``, ``_panic``,
  ``_members`` (a pool's member count), ``_ewma_seconds``, ``_limit``, ``_info``, a
  timestamp...): those take the maximum across workers (``revproxy_member_up`` is 1 when
  some worker may send to the member; ``revproxy_member_state`` is 1 for every state some
  worker sees).

The families keep the first worker's order, help text and type; families only some workers
have are included too.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

MAX_GAUGE_MARKERS = ("_up", "_healthy", "_health", "_state", "_weight", "_limit", "_ejected",
                     "_info", "_timestamp_seconds", "_time_seconds", "_ewma_seconds",
                     "_members", "_panic")


def gauge_takes_max(name: str) -> bool:
    return any(name.endswith(marker) or (marker + "_") in name for marker in MAX_GAUGE_MARKERS)


def sample_rule(family_type: str, family_name: str, sample_name: str, labels) -> str:
    """``"sum"``, ``"max"`` or ``"min"``: how one sample combines across workers."""
    if sample_name.endswith("_created"):
        return "min"
    if family_type == "summary" and "quantile" in labels:
        return "max"
    if family_type == "gauge" and gauge_takes_max(family_name):
        return "max"
    if family_type in ("info", "stateset"):
        return "max"
    return "sum"


_COMBINE = {"sum": sum, "max": max, "min": min}


def merge_families(texts: Sequence[str]):
    """``[(name, documentation, type, unit, [(sample name, labels, value)])]``: the families
    of every text in ``texts`` (Prometheus text format), samples combined across texts.
    Raises ValueError when a text does not parse."""
    from prometheus_client.parser import text_string_to_metric_families

    families: Dict[str, list] = {}
    values: Dict[str, Dict[Tuple[str, Tuple[Tuple[str, str], ...]], List[float]]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name not in families:
                families[family.name] = [family.name, family.documentation, family.type,
                                         family.unit]
                values[family.name] = {}
            samples = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sample.labels.items()))
                samples.setdefault(key, []).append(sample.value)
    merged = []
    for name, (_, documentation, family_type, unit) in families.items():
        samples = []
        for (sample_name, labels), found in values[name].items():
            rule = sample_rule(family_type, name, sample_name, dict(labels))
            samples.append((sample_name, dict(labels), _COMBINE[rule](found)))
        merged.append((name, documentation, family_type, unit, samples))
    return merged


def render(families) -> bytes:
    """The Prometheus text exposition of ``families`` (as ``merge_families`` returns), written
    by ``prometheus_client.generate_latest``."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import Metric

    class Merged:
        def collect(self):
            for name, documentation, family_type, unit, samples in families:
                metric = Metric(name, documentation, family_type, unit)
                for sample_name, labels, value in samples:
                    metric.add_sample(sample_name, labels, value)
                yield metric

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Merged())
    return generate_latest(registry)


def supervisor_families(slots) -> list:
    """The supervisor's own families: ``revproxy_workers`` (configured and running) and
    ``revproxy_worker_restarts_total`` per slot. ``slots``: dicts with index, running and
    restarts."""
    running = sum(1 for s in slots if s["running"])
    return [
        ("revproxy_workers", "Worker processes, by state (configured, running).", "gauge", "",
         [("revproxy_workers", {"state": "configured"}, float(len(slots))),
          ("revproxy_workers", {"state": "running"}, float(running))]),
        ("revproxy_worker_restarts", "Times the supervisor restarted each worker slot.",
         "counter", "",
         [("revproxy_worker_restarts_total", {"worker": str(s["index"])}, float(s["restarts"]))
          for s in slots]),
    ]
