"""keynames.py: entries built from remembered names equal the plain computation, whatever
the keys (long ones, new ones once the memo is full), and the memo stays bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang import keynames

_KEYS = st.one_of(st.binary(max_size=8), st.binary(min_size=60, max_size=80),
                  st.sampled_from([b"Q", b"q", b"User-Agent", b"\xe9t\xc9"]))
_PAIRS = st.lists(st.tuples(_KEYS, st.binary(max_size=6)), max_size=12)


def _plain(name, pairs):
    return [(k.lower(), name + ":" + k.decode("latin-1"), v, k) for k, v in pairs]


@pytest.fixture(autouse=True)
def _small_memo(monkeypatch):
    monkeypatch.setattr(keynames, "_MEMO", {})
    monkeypatch.setattr(keynames, "MEMO_MAX", 5)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PAIRS, min_size=1, max_size=6), st.sampled_from(["ARGS", "REQUEST_HEADERS"]))
def test_entries_equal_the_plain_computation_request_after_request(requests, name):
    for pairs in requests:
        assert keynames.entries(name, pairs) == _plain(name, pairs)
        names = keynames.name_entries(name + "_NAMES", keynames.entries(name, pairs))
        assert names == _plain(name + "_NAMES", [(k, k) for k, _ in pairs])
        memo = keynames._MEMO[name]
        assert len(memo) <= keynames.MEMO_MAX
        assert all(len(k) <= keynames.KEY_MAX for k in memo)


def test_a_name_seen_before_is_the_same_object():
    first = keynames.entries("ARGS", [(b"q", b"1")])[0][1]
    again = keynames.entries("ARGS", [(b"q", b"2")])[0][1]
    assert first == "ARGS:q" and again is first
