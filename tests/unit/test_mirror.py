"""The mirror's pure decision (sampling, body bound, in-flight bound), the marker field, the
config keys, and a copy's owner on a fake exchange."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial import unittest

from revproxy.config.errors import ConfigError
from revproxy.config.load import parse_config
from revproxy.server.mirror import (
    BUSY, NOT_SAMPLED, SENT, TOO_LARGE, UPGRADE, MirrorStage, mirror_decision, mirrored_head,
)


def decide(draw=0.0, percent=100.0, body=None, max_body=10, in_flight=0, limit=2,
           upgrade=False):
    return mirror_decision(draw, percent, body, max_body, in_flight, limit, upgrade)


def test_each_bound_in_turn():
    assert decide() == SENT
    assert decide(body=b"x" * 10) == SENT
    assert decide(body=b"x" * 11) == TOO_LARGE
    assert decide(body=object()) == TOO_LARGE  # a spool in a file: never read for a copy
    assert decide(in_flight=2) == BUSY
    assert decide(upgrade=True) == UPGRADE
    assert decide(draw=0.5, percent=50) == NOT_SAMPLED
    assert decide(draw=0.49, percent=50) == SENT
    assert decide(draw=0.0, percent=0) == NOT_SAMPLED


@given(st.floats(0, 100))
def test_sampling_converges_to_the_percentage(percent):
    """Over evenly spread draws the copied share is the percentage (to 1/n)."""
    n = 2000
    sent = sum(decide(draw=i / n, percent=percent) == SENT for i in range(n))
    assert abs(sent / n * 100.0 - percent) <= 100.0 / n + 1e-9


@given(st.binary(max_size=64).filter(lambda b: b"\r" not in b and b"\n" not in b))
def test_marker_is_added_as_the_last_field(value):
    head = b"GET / HTTP/1.1\r\nhost: a\r\nx-v: " + value + b"\r\n\r\n"
    marked = mirrored_head(head)
    assert marked == head[:-2] + b"x-revproxy-mirror: 1\r\n\r\n"
    assert marked.endswith(b"\r\n\r\n") and marked.count(b"\r\n\r\n") == 1


POOLS = {"main": {"members": ["http://10.0.0.1:80"]}, "shadow": {"members": ["unix:/s.sock"]}}


def test_config_keys():
    config = parse_config({"pools": POOLS, "routes": [
        {"pool": "main", "mirror": "shadow", "mirror_percent": 12.5,
         "mirror_max_body": "1k", "mirror_max_in_flight": 3}]}, "f.toml")
    route = config.routes[0]
    assert (route.mirror, route.mirror_percent, route.mirror_max_body,
            route.mirror_max_in_flight) == ("shadow", 12.5, 1024, 3)
    default = parse_config({"pools": POOLS, "routes": [{"pool": "main", "mirror": "shadow"}]},
                           "f.toml").routes[0]
    assert (default.mirror_percent, default.mirror_max_body,
            default.mirror_max_in_flight) == (100.0, 65536, 16)


@pytest.mark.parametrize("route, key", [
    ({"mirror": "nope"}, "mirror"),
    ({"mirror": "shadow", "mirror_percent": 101}, "mirror_percent"),
    ({"mirror": "shadow", "mirror_max_in_flight": 0}, "mirror_max_in_flight"),
    ({"mirror_percent": 5}, "mirror_percent"),
])
def test_bad_config_names_the_key(route, key):
    with pytest.raises(ConfigError) as info:
        parse_config({"pools": POOLS, "routes": [dict({"pool": "main"}, **route)]}, "f.toml")
    assert "f.toml" in str(info.value) and key in str(info.value)


class _Route:
    name = "app"
    mirror = "shadow"
    mirror_percent = 100.0
    mirror_max_body = 10
    mirror_max_in_flight = 1


def test_stage_counts_finishes():
    """finished() frees a slot and counts the copy's fate."""
    stage = MirrorStage(_Route(), None)
    stage.in_flight = 1
    stage.finished(True)
    stage.in_flight = 1
    stage.finished(False)
    assert (stage.in_flight, stage.counts["answered"], stage.counts["failed"]) == (0, 1, 1)


def _mirror_world(testcase, **route):
    from tests.unit.world import World, config_dict

    data = config_dict()
    data["pools"]["shadow"] = {"members": ["http://10.0.0.2:8000"]}
    settings = {"name": "app", "pool": "main", "mirror": "shadow"}
    settings.update(route)
    data["routes"] = [settings]
    return World(testcase, data), data


def _mirrored_request(world):
    proto, client = world.client()
    proto.dataReceived(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    backend, _ = world.accept_backend()
    mirror, sent = world.accept_backend()
    assert b"x-revproxy-mirror: 1" in sent.value()
    backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    mirror.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


class MirrorStatusTests(unittest.TestCase):
    def test_counts_are_in_the_status_and_survive_an_unchanged_reload(self):
        """/status shows each mirroring route's counts; a reload that keeps the route's
        mirror settings keeps them (and the stage); changed settings start afresh."""
        from revproxy.admin.status import status_document

        world, data = _mirror_world(self)
        world.start()
        _mirrored_request(world)
        mirrors = status_document(world.service._holder.current, 0.0)["mirrors"]
        self.assertEqual(mirrors["app"]["pool"], "shadow")
        self.assertEqual(mirrors["app"]["in_flight"], 0)
        self.assertEqual((mirrors["app"]["counts"]["sent"], mirrors["app"]["counts"]["answered"]),
                         (1, 1))

        data["limits"] = {"header_timeout": 7}  # another change; the route stays as it was
        self.assertTrue(world.reload(data))
        mirrors = status_document(world.service._holder.current, 0.0)["mirrors"]
        self.assertEqual(mirrors["app"]["counts"]["sent"], 1)

        data["routes"][0]["mirror_percent"] = 50
        self.assertTrue(world.reload(data))
        mirrors = status_document(world.service._holder.current, 0.0)["mirrors"]
        self.assertEqual(mirrors["app"]["percent"], 50)
        self.assertEqual(mirrors["app"]["counts"]["sent"], 0)

    def test_no_mirror_no_entry(self):
        from revproxy.admin.status import status_document
        from tests.unit.world import World

        world = World(self)
        self.assertEqual(status_document(world.runtime, 0.0)["mirrors"], {})
