"""Prefilter groups outside a phase union (unclassifiable chains: base64Decode, sha1 ...)
first run their multi-line set once over their values joined (chains._joined_hits): the
same logs as without the prefilter, multiMatch intermediates included."""

from __future__ import annotations

import base64
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import given, settings, strategies as st

from tests.unit.firewall.seclang_helpers import ids, run, with_and_without_prefilter

RULES = r"""
SecRule ARGS "@rx (?:eval|alert)\(" "id:1,phase:2,pass,log,multiMatch,t:none,t:urlDecodeUni,t:base64Decode,t:jsDecode"
SecRule ARGS|ARGS_NAMES "@rx ^abc$" "id:2,phase:2,pass,log,multiMatch,t:none,t:base64Decode"
SecRule ARGS "@rx \Aa9993e36" "id:3,phase:2,pass,log,t:none,t:sha1,t:hexEncode"
SecRule ARGS "@pm evil wicked" "id:4,phase:2,pass,log,multiMatch,t:none,t:base64Decode,t:lowercase"
"""

PIECES = [b"abc", b"YWJj", b"ZXZhbCg=", b"eval(", b"%5a%58%5a%68%62%43%67%3d", b"\\x61",
          b"ZXZpbA==", b"V2lja2Vk", b"x", b"\n", b"=", b"+", b"%", b"AlErT(", b"YWxlcnQo"]


@pytest.fixture(scope="module")
def pair():
    return with_and_without_prefilter(RULES)


def test_the_groups_stand_alone_with_a_joined_matcher(pair):
    fast, plain = pair
    links = [r for r in fast.all_rules if r.pre is not None]
    assert len(links) == 4 and plain.prefiltered == 0
    assert all(r.pre[0].union is None and r.pre[0].text_match is not None for r in links)


@pytest.mark.parametrize("value, logged", [
    (b"abc", [2, 3]), (b"YWJj", [2]), (base64.b64encode(b"eval(1)"), [1]),
    (b"hello", []), (base64.b64encode(b"WICKED"), [4])])
def test_known_values(pair, value, logged):
    fast, plain = pair
    uri = b"/?k=" + quote_from_bytes(value).encode()
    assert ids(run(fast, uri)) == ids(run(plain, uri)) == logged


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(PIECES), max_size=3).map(b"".join),
                          st.lists(st.sampled_from(PIECES), max_size=4).map(b"".join)),
                min_size=1, max_size=5))
def test_random_arguments_log_the_same_ids(pair, args):
    fast, plain = pair
    uri = ("/?" + "&".join("%s=%s" % (quote_from_bytes(k or b"k"), quote_from_bytes(v))
                           for k, v in args)).encode()
    assert ids(run(fast, uri)) == ids(run(plain, uri))
