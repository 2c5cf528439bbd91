"""The supervisor's admin listener with 2 real workers and the real admin API: status and
stats summed, metrics combined (parsed by prometheus_client), a member action and a purge
reaching every worker, reload through the API, the token checked by the workers."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer

from tests.integration.test_workers_live import Load, SupervisorCase, http

TOKEN = "s3cret-token"


class WorkersAdminTests(SupervisorCase):
    def setUp(self):
        SupervisorCase.setUp(self)
        self.write_config(extra='[cache]\nstore = "memory"\n')
        with open(self.config) as f:
            text = f.read()
        with open(self.config, "w") as f:
            f.write(text.replace('[admin]\n', '[admin]\ntoken = "%s"\n' % TOKEN))

    def admin_call(self, method, path, body=None, token=TOKEN):
        from twisted.web.http_headers import Headers

        return http(method, self.admin + path, body,
                    Headers({b"authorization": [b"Bearer " + token.encode()]}) if token else None)

    @defer.inlineCallbacks
    def test_admin_across_workers(self):
        """Counters sum to what the clients sent; metrics parse and sum; a drain reaches both
        workers; a wrong token is refused by them; reload through the API."""
        yield self.start()
        load = Load(self.port, concurrency=4)
        load.start()
        yield load.until(lambda: len(load.pids) == 2 and load.ok >= 40)
        yield load.stop()
        sent = load.ok

        code, _, body = yield self.admin_call(b"GET", b"/api/stats")
        self.assertEqual(code, 200, body)
        stats = json.loads(body)
        self.assertEqual(stats["requests"]["total"], sent)
        self.assertEqual(stats["workers"]["count"], 2)
        per_worker = [w["document"]["requests"]["total"] for w in stats["workers"]["workers"]]
        self.assertEqual(sorted(per_worker), sorted(load.pids.values()))

        code, _, body = yield self.admin_call(b"GET", b"/metrics")
        self.assertEqual(code, 200)
        total = 0.0
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == "revproxy_requests_total":
                    total += sample.value
                if sample.name == "revproxy_workers" and sample.labels["state"] == "running":
                    self.assertEqual(sample.value, 2)
        self.assertEqual(total, sent)

        code, _, body = yield self.admin_call(b"GET", b"/api/status", token="wrong")
        self.assertEqual(code, 401, body)

        member = b"127.0.0.1:%d" % self.backend.getHost().port
        code, _, body = yield self.admin_call(b"POST", b"/api/members/main/%s/drain" % member)
        self.assertEqual(code, 200, body)
        answer = json.loads(body)
        self.assertEqual([w["status"] for w in answer["workers"]], [200, 200])
        code, _, body = yield self.admin_call(b"GET", b"/api/status")
        status = json.loads(body)
        [merged] = status["pools"]["main"]["members"]
        self.assertEqual(merged["state"], "draining")
        for worker in status["workers"]["workers"]:
            [own] = worker["document"]["pools"]["main"]["members"]
            self.assertEqual(own["state"], "draining")

        code, _, body = yield self.admin_call(b"POST", b"/api/purge?prefix=http://x/")
        self.assertEqual(code, 200, body)

        code, _, body = yield self.admin_call(b"POST", b"/api/reload")
        self.assertEqual(code, 200, body)
        reload = json.loads(body)
        self.assertTrue(reload["reloaded"])
        self.assertEqual(len(reload["workers"]), 2)
