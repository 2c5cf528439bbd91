"""[[rate_limits]] and [rate_limits_shared]: values parsed, bad ones refused naming file and key."""

from __future__ import annotations

from twisted.trial import unittest

from revproxy.config.errors import ConfigError
from revproxy.config.load import parse_config
from revproxy.config.ratelimits import parse_rate
from tests.unit.world import config_dict


def parsed(limits, **sections):
    data = config_dict(**sections)
    data["rate_limits"] = limits
    return parse_config(data, "conf/x.toml").rate_limits


class RateLimitConfigTests(unittest.TestCase):
    def test_rates(self):
        """Rates per second, minute, hour; size suffixes for byte rates."""
        self.assertEqual([parse_rate(t) for t in ("10/s", "600/m", "3600/h", "1k/s", "0.5/s")],
                         [10.0, 10.0, 1.0, 1024.0, 0.5])

    def test_defaults_and_values(self):
        """Omitted keys take their defaults (burst = one second of rate); keys are canonical."""
        limit, = parsed([{"name": "a", "rate": "600/m"}]).limits
        self.assertEqual((limit.key, limit.burst, limit.unit, limit.action, limit.routes,
                          limit.max_keys, limit.shared), (("ip",), 10.0, "requests", "reject",
                                                          (), 100000, False))
        limit, = parsed([{"name": "b", "rate": "1/s", "key": ["header:X-Key", "cookie:Sid"],
                          "burst": 5, "max_delay": "500ms", "action": "delay"}]).limits
        self.assertEqual((limit.key, limit.burst, limit.max_delay),
                         (("header:x-key", "cookie:Sid"), 5.0, 0.5))

    def test_shared_servers_default_to_the_cache_memcached(self):
        """shared = true with no [rate_limits_shared] servers uses the [cache] memcached ones."""
        settings = parsed([{"name": "a", "rate": "1/s", "shared": True}], cache={
            "store": "memcached", "store_options": {"servers": "127.0.0.1:11211,127.0.0.1:11212"}})
        self.assertEqual(settings.shared.servers, ("127.0.0.1:11211", "127.0.0.1:11212"))

    def test_bad_values_name_file_key_and_expectation(self):
        cases = [
            ({"name": "a", "rate": "fast"}, '[[rate_limits]] #1 rate = "fast": expected'),
            ({"rate": "1/s"}, "[[rate_limits]] #1 name: missing"),
            ({"name": "a", "rate": "1/s", "key": ["ip", "ip"]}, "key #2"),
            ({"name": "a", "rate": "1/s", "key": "header:"}, 'key #1 = "header:"'),
            ({"name": "a", "rate": "1/s", "unit": "kb"}, 'unit = "kb": expected one of'),
            ({"name": "a", "rate": "1/s", "action": "drop"}, 'action = "drop"'),
            ({"name": "a", "rate": "1/s", "routes": ["nope"]}, 'routes #1 = "nope"'),
            ({"name": "a", "rate": "1/s", "max_keys": 0}, "max_keys = 0: expected an integer"),
            ({"name": "a", "rate": "1/s", "shared": True}, "shared = true: needs memcached"),
            ({"name": "a", "rate": "1/s", "colour": 1}, "colour = 1: unknown key"),
            ({"name": "a", "rate": "1/s", "max_delay": "0s"}, "max_delay"),
        ]
        for limit, expected in cases:
            with self.assertRaises(ConfigError) as caught:
                parsed([limit])
            self.assertTrue(str(caught.exception).startswith("conf/x.toml: "), caught.exception)
            self.assertIn(expected, str(caught.exception))

    def test_duplicate_names_and_bad_shared_table(self):
        with self.assertRaises(ConfigError) as caught:
            parsed([{"name": "a", "rate": "1/s"}, {"name": "a", "rate": "2/s"}])
        self.assertIn('[[rate_limits]] #2 name = "a"', str(caught.exception))
        with self.assertRaises(ConfigError) as caught:
            parsed([], rate_limits_shared={"servers": ["nohost"]})
        self.assertIn('[rate_limits_shared] servers #1 = "nohost": expected "host:port"',
                      str(caught.exception))
