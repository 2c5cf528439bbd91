"""The admin dashboard in a real headless Chromium (Debian's ``chromium``), driven over the
DevTools protocol (tests/integration/cdp.py): it loads, shows the pools, a chart moves when
traffic flows, it fits a phone's width, and it asks for the bearer token once. Screenshots
are saved under the pytest tmp dir (their paths are printed)."""

from __future__ import annotations

import json
import os

import pytest
from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.fakeadmin import FakeAdmin, fake_admin_site
from tests.integration.cdp import Browser, find_chromium
from tests.integration.support import listen, with_timeout

CHROMIUM = find_chromium()
if CHROMIUM is None and os.environ.get("CI") != "true":  # CI installs it (scripts/setup-env)
    pytestmark = pytest.mark.skip(reason="chromium is not installed (apt-get install chromium)")

POOLS = """JSON.stringify(Array.from(document.querySelectorAll('#pools [data-pool]')).map(
    p => [p.dataset.pool, Array.from(p.querySelectorAll('tr[data-member]')).map(
        r => [r.dataset.member, r.cells[1].textContent])]))"""


class DashboardBrowserTests(unittest.TestCase):
    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path):
        self.tmp_path = tmp_path

    @defer.inlineCallbacks
    def start(self, fake):
        port = listen(fake_admin_site(fake))
        self.addCleanup(port.stopListening)
        profile = str(self.tmp_path / "chromium-profile")
        os.makedirs(profile)
        browser = Browser.launch(reactor, CHROMIUM, profile)
        self.addCleanup(browser.close)
        yield with_timeout(browser.open("http://127.0.0.1:%d/" % port.getHost().port), 60)
        return browser

    @defer.inlineCallbacks
    def shot(self, browser, name):
        path = yield browser.screenshot(str(self.tmp_path / name))
        print("dashboard screenshot: %s" % path)
        self.assertGreater(os.path.getsize(path), 1000)
        return path

    def polls(self, browser):
        return browser.evaluate("Number(document.body.dataset.polls)")

    @defer.inlineCallbacks
    def test_loads_shows_pools_and_the_rate_chart_moves_with_traffic(self):
        """Two polls with no traffic: rate 0; traffic: the rate figure and the rate chart's
        newest point go above 0, the member rows keep their state."""
        fake = FakeAdmin(pools={"main": ["127.0.0.1:8001", "127.0.0.1:8002"],
                                "static": ["127.0.0.1:9001"]})
        fake.states[("main", "127.0.0.1:8002")] = "draining"
        browser = yield self.start(fake)
        yield browser.wait_for("Number(document.body.dataset.polls) >= 2")
        pools = json.loads((yield browser.evaluate(POOLS)))
        self.assertEqual(pools, [
            ["main", [["127.0.0.1:8001", "healthy"], ["127.0.0.1:8002", "draining"]]],
            ["static", [["127.0.0.1:9001", "healthy"]]]])
        self.assertEqual((yield browser.evaluate("document.getElementById('rate').dataset.value")),
                         "0")
        self.assertEqual((yield browser.evaluate(
            "document.getElementById('chart-rate').dataset.last")), "0")
        before = yield self.polls(browser)

        fake.traffic(60, "2xx", hits=30)
        fake.traffic(6, "5xx")
        rate = yield browser.wait_for(
            "Number(document.getElementById('rate').dataset.value) > 0 && "
            "Number(document.getElementById('rate').dataset.value)")
        self.assertGreater((yield self.polls(browser)), before)
        self.assertGreater(rate, 0)
        last = yield browser.evaluate(
            "Number(document.getElementById('chart-rate').dataset.last)")
        self.assertEqual(last, rate)
        self.assertGreater((yield browser.evaluate(
            "Number(document.getElementById('chart-status').dataset.points)")), 2)
        self.assertGreater((yield browser.evaluate(
            "Number(document.getElementById('errors-rate').dataset.value)")), 0)
        self.assertEqual((yield browser.evaluate(
            "Number(document.getElementById('hit-ratio').dataset.value)")), 30 / 66)
        member_rate = yield browser.evaluate(
            "Number(document.querySelector('tr[data-member=\"127.0.0.1:8001\"] td.num')"
            ".dataset.value)")
        self.assertGreater(member_rate, 0)
        yield self.shot(browser, "dashboard.png")

    @defer.inlineCallbacks
    def test_fits_a_phone_screen(self):
        """At 390 px wide the page does not scroll sideways and the cards stack in one
        column."""
        browser = yield self.start(FakeAdmin())
        yield browser.page("Emulation.setDeviceMetricsOverride", {
            "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
        yield browser.wait_for("Number(document.body.dataset.polls) >= 1")
        yield browser.page("Page.reload")  # with the phone's viewport from the start
        yield browser.wait_for("Number(document.body.dataset.polls) >= 1")
        self.assertEqual((yield browser.evaluate("window.innerWidth")), 390)
        self.assertLessEqual((yield browser.evaluate("document.documentElement.scrollWidth")),
                             390)
        lefts = yield browser.evaluate(
            "Array.from(document.querySelectorAll('.card')).map(c => c.offsetLeft)")
        self.assertEqual(len(set(lefts)), 1, lefts)
        yield self.shot(browser, "dashboard-phone.png")

    @defer.inlineCallbacks
    def test_asks_for_the_token_once_and_sends_it(self):
        """A 401 shows the token form; once given, polls succeed, the token stays in
        sessionStorage only."""
        fake = FakeAdmin(token="s3cret")
        browser = yield self.start(fake)
        yield browser.wait_for("!document.getElementById('login').hidden")
        self.assertEqual((yield self.polls(browser)), 0)
        yield browser.evaluate(
            "document.getElementById('token').value = 's3cret';"
            "document.getElementById('login').requestSubmit(); true")
        yield browser.wait_for("Number(document.body.dataset.polls) >= 2")
        self.assertTrue((yield browser.evaluate("document.getElementById('login').hidden")))
        self.assertEqual((yield browser.evaluate(
            "sessionStorage.getItem('revproxy-admin-token')")), "s3cret")
        self.assertIsNone((yield browser.evaluate(
            "localStorage.getItem('revproxy-admin-token')")))
        yield self.shot(browser, "dashboard-token.png")
