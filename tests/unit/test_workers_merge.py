"""Admin documents and Prometheus samples of several workers combined as one (pure data)."""

from __future__ import annotations

from hypothesis import given, strategies as st
from prometheus_client.parser import text_string_to_metric_families
from twisted.trial import unittest

from revproxy.workers.merge import combine, merge_actions, merge_documents
from revproxy.workers.metrics import merge_families, render, supervisor_families

STATS_A = {"time": 100, "requests": {"total": 10, "2xx": 9, "5xx": 1},
           "latency_ms": {"p50": 2.0, "p90": 5.0, "p99": 9.0},
           "cache": {"hits": 3, "misses": 1, "stale": 0, "ratio": 0.75},
           "members": {"main": {"a:1": {"state": "healthy", "requests": 7, "inflight": 1,
                                        "weight": 2, "ewma_ms": 4.0}}},
           "connections": 4, "rate_limited": 0}
STATS_B = {"time": 101, "requests": {"total": 30, "2xx": 30, "5xx": 0},
           "latency_ms": {"p50": 1.0, "p90": 7.0, "p99": 8.0},
           "cache": {"hits": 1, "misses": 3, "stale": 1, "ratio": 0.25},
           "members": {"main": {"a:1": {"state": "ejected", "requests": 5, "inflight": 0,
                                        "weight": 2, "ewma_ms": 6.0}}},
           "connections": 1, "rate_limited": 2}


class CombineTests(unittest.TestCase):
    def test_amounts_are_summed(self):
        """Counters, connections and per-member requests add up across workers."""
        merged = combine([STATS_A, STATS_B])
        self.assertEqual(merged["requests"], {"total": 40, "2xx": 39, "5xx": 1})
        self.assertEqual(merged["connections"], 5)
        self.assertEqual(merged["members"]["main"]["a:1"]["requests"], 12)
        self.assertEqual(merged["rate_limited"], 2)

    def test_non_amounts(self):
        """Percentiles and time: maximum; weight: the config's; EWMA: mean; the ratio is
        recomputed from the summed hits and misses; differing states are both shown."""
        merged = combine([STATS_A, STATS_B])
        self.assertEqual(merged["latency_ms"], {"p50": 2.0, "p90": 7.0, "p99": 9.0})
        self.assertEqual(merged["time"], 101)
        member = merged["members"]["main"]["a:1"]
        self.assertEqual(member["weight"], 2)
        self.assertEqual(member["ewma_ms"], 5.0)
        self.assertEqual(member["state"], "ejected|healthy")
        self.assertEqual(merged["cache"]["ratio"], 0.5)

    def test_member_lists_merge_by_name(self):
        """A list of named objects merges name by name, keeping names only one has."""
        merged = combine([[{"name": "a", "in_flight": 1}, {"name": "b", "in_flight": 2}],
                          [{"name": "b", "in_flight": 5}, {"name": "c", "in_flight": 1}]])
        self.assertEqual(merged, [{"name": "a", "in_flight": 1}, {"name": "b", "in_flight": 7},
                                  {"name": "c", "in_flight": 1}])

    def test_missing_and_null_values(self):
        """A key only some workers have merges the others; null everywhere stays null;
        plain lists are the first worker's; booleans are true only when all are."""
        self.assertEqual(combine([{"a": 1}, {"b": 2}, {"a": 3, "c": None}]),
                         {"a": 4, "b": 2, "c": None})
        self.assertEqual(combine([["x", "y"], ["z"]]), ["x", "y"])
        self.assertEqual(combine([{"panic": True}, {"panic": False}]), {"panic": False})

    @given(st.lists(st.dictionaries(st.sampled_from(["total", "2xx", "5xx"]),
                                    st.integers(0, 10 ** 9)), min_size=1, max_size=8))
    def test_counter_sums_are_exact(self, docs):
        """Every counter of the merge is the exact sum of the workers' values."""
        merged = combine([{"requests": d} for d in docs])["requests"]
        for key in merged:
            self.assertEqual(merged[key], sum(d.get(key, 0) for d in docs))


class DocumentTests(unittest.TestCase):
    def test_workers_detail_under_workers(self):
        """Totals at the top, each worker's own document (or error) under ``workers``."""
        answers = [({"index": 0, "pid": 10}, STATS_A, None),
                   ({"index": 1, "pid": 11}, None, "not running")]
        merged = merge_documents(answers, 9)
        self.assertEqual(merged["requests"]["total"], 10)
        workers = merged["workers"]
        self.assertEqual((workers["count"], workers["up"], workers["pid"]), (2, 1, 9))
        self.assertEqual(workers["workers"][0]["document"], STATS_A)
        self.assertEqual(workers["workers"][1]["error"], "not running")

    def test_actions_agree_or_disagree(self):
        """Same status everywhere: the first answer plus each worker's; different statuses
        (or a worker that did not answer): 502 naming them."""
        same = [({"index": 0}, 200, {"ok": True}, None), ({"index": 1}, 200, {"ok": True}, None)]
        status, doc = merge_actions(same)
        self.assertEqual(status, 200)
        self.assertTrue(doc["ok"])
        self.assertEqual([w["status"] for w in doc["workers"]], [200, 200])
        split = [({"index": 0}, 200, {"ok": True}, None), ({"index": 1}, None, None, "refused")]
        status, doc = merge_actions(split)
        self.assertEqual(status, 502)
        self.assertIn("differently", doc["error"])
        self.assertEqual(doc["workers"][1]["error"], "refused")


def _text(requests, inflight, healthy, created, bucket):
    return (
        "# HELP rp_requests Requests.\n# TYPE rp_requests counter\n"
        'rp_requests_total{route="a",class="2xx"} %d\n'
        'rp_requests_created{route="a",class="2xx"} %f\n'
        "# HELP rp_inflight In flight.\n# TYPE rp_inflight gauge\nrp_inflight %d\n"
        "# HELP rp_member_healthy Health.\n# TYPE rp_member_healthy gauge\n"
        'rp_member_healthy{member="m"} %d\n'
        "# HELP rp_latency_seconds Latency.\n# TYPE rp_latency_seconds histogram\n"
        'rp_latency_seconds_bucket{le="0.1"} %d\nrp_latency_seconds_bucket{le="+Inf"} %d\n'
        "rp_latency_seconds_count %d\nrp_latency_seconds_sum 0.5\n"
        % (requests, created, inflight, healthy, bucket, requests, requests))


class MetricsTests(unittest.TestCase):
    def merged(self):
        families = merge_families([_text(5, 2, 1, 200.0, 3), _text(7, 1, 0, 100.0, 4)])
        text = render(families).decode()
        return {s.name + repr(sorted(s.labels.items())): s.value
                for f in text_string_to_metric_families(text) for s in f.samples}

    def test_counters_and_histograms_sum(self):
        """Counter samples, buckets, _count and _sum are summed; _created the earliest."""
        samples = self.merged()
        self.assertEqual(samples["rp_requests_total[('class', '2xx'), ('route', 'a')]"], 12)
        self.assertEqual(samples["rp_latency_seconds_bucket[('le', '0.1')]"], 7)
        self.assertEqual(samples["rp_latency_seconds_bucket[('le', '+Inf')]"], 12)
        self.assertEqual(samples["rp_latency_seconds_count[]"], 12)
        self.assertEqual(samples["rp_latency_seconds_sum[]"], 1.0)
        self.assertEqual(samples["rp_requests_created[('class', '2xx'), ('route', 'a')]"],
                         100.0)

    def test_gauges_sum_except_states(self):
        """An amount gauge is summed; a health gauge takes the maximum."""
        samples = self.merged()
        self.assertEqual(samples["rp_inflight[]"], 3)
        self.assertEqual(samples["rp_member_healthy[('member', 'm')]"], 1)

    def test_supervisor_families_render(self):
        """The supervisor's own families parse back with their values."""
        families = supervisor_families([{"index": 0, "running": True, "restarts": 3},
                                        {"index": 1, "running": False, "restarts": 0}])
        text = render(families).decode()
        samples = {(s.name, tuple(s.labels.items())): s.value
                   for f in text_string_to_metric_families(text) for s in f.samples}
        self.assertEqual(samples[("revproxy_workers", (("state", "running"),))], 1)
        self.assertEqual(samples[("revproxy_workers", (("state", "configured"),))], 2)
        self.assertEqual(samples[("revproxy_worker_restarts_total", (("worker", "0"),))], 3)

    def test_bad_text_is_a_value_error(self):
        """A worker's text that does not parse raises ValueError (the fan-out answers 502)."""
        with self.assertRaises(ValueError):
            merge_families(["# TYPE x counter\nx{ 1\n"])


class StatusShapeTests(unittest.TestCase):
    def test_hit_ratio_from_the_cache_metrics(self):
        """The status' cache ``hit_ratio`` is recomputed from the summed metrics beside it."""
        merged = combine([{"hit_ratio": 0.9, "metrics": {"hits": 9, "misses": 1}},
                          {"hit_ratio": 0.1, "metrics": {"hits": 1, "misses": 9}}])
        self.assertEqual(merged["hit_ratio"], 0.5)
        self.assertEqual(merged["metrics"], {"hits": 10, "misses": 10})

    def test_member_weights_are_not_summed(self):
        """weight, configured_weight and admin_weight are the config's, not amounts."""
        member = {"name": "m", "weight": 3.0, "configured_weight": 3, "admin_weight": None,
                  "in_flight": 1}
        [merged] = combine([[member], [dict(member, in_flight=2)]])
        self.assertEqual((merged["weight"], merged["configured_weight"], merged["in_flight"]),
                         (3.0, 3, 3))


class GaugeRuleTests(unittest.TestCase):
    def test_latency_and_config_gauges_take_the_maximum(self):
        """EWMA latencies, member counts and panic flags are not amounts."""
        text = ("# TYPE revproxy_member_ewma_seconds gauge\n"
                'revproxy_member_ewma_seconds{member="m"} %s\n'
                "# TYPE revproxy_pool_members gauge\n"
                'revproxy_pool_members{pool="p"} 3\n'
                "# TYPE revproxy_pool_queue_size gauge\n"
                'revproxy_pool_queue_size{pool="p"} 2\n')
        families = {f[0]: f[4] for f in merge_families([text % "0.2", text % "0.5"])}
        self.assertEqual(families["revproxy_member_ewma_seconds"][0][2], 0.5)
        self.assertEqual(families["revproxy_pool_members"][0][2], 3)
        self.assertEqual(families["revproxy_pool_queue_size"][0][2], 4)
