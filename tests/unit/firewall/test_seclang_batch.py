"""Validation operators checked once over all of a target's values when none can match
(Rule.op_batch: @validateByteRange, @validateUtf8Encoding): the same logs and TX as one
value at a time, with and without transformations."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang import operators
from tests.unit.firewall.seclang_helpers import ids, run, waf

RULES = r"""
SecRule ARGS|ARGS_NAMES|REQUEST_HEADERS "@validateByteRange 32-126" "id:1,phase:2,pass,log,t:none,t:urlDecodeUni,setvar:tx.a=+1"
SecRule ARGS "@validateByteRange 1-255" "id:2,phase:2,pass,log,t:none,t:lowercase,setvar:tx.b=+1"
SecRule ARGS|ARGS_NAMES "@validateUtf8Encoding" "id:3,phase:2,pass,log,t:none,setvar:tx.c=+1"
SecRule ARGS "!@validateByteRange 48-57" "id:4,phase:2,pass,log,setvar:tx.d=+1"
SecRule ARGS "@validateByteRange 65-90" "id:5,phase:2,pass,log,t:none,t:lowercase"
SecRule ARGS "@validateByteRange 48-57,97-122" "id:6,phase:2,pass,log,t:none,t:sha1"
"""

PIECES = [b"a", b"Z", b"7", b" ", b"%41", b"%00", b"+", b"\x00", b"\x01", b"\x7f", b"\xff",
          b"\xc3\xa9", b"\xc3", b"\xa9", b"\xe2\x82", b"\xac", b"\n", b"~"]


@pytest.fixture(scope="module")
def pair():
    batched = waf(RULES)
    plain = waf(RULES)
    for r in plain.all_rules:
        for link in r.chain_rules():
            link.op_batch = None
    return batched, plain


def test_only_unnegated_validations_batch(pair):
    batched, _ = pair
    got = {r.id: r.op_batch is not None for r in batched.all_rules}
    assert got == {1: True, 2: True, 3: True, 4: False, 5: True, 6: True}


def test_utf8_none_match_is_every_value_valid():
    check = operators._utf8_none_match
    assert check([b"a", b"\xc3\xa9"]) and not check([b"\xc3", b"\xa9"])
    assert not check([b"ok", b"\xff"]) and check([])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(PIECES), max_size=3).map(b"".join),
                          st.lists(st.sampled_from(PIECES), max_size=5).map(b"".join)),
                min_size=1, max_size=6),
       st.sampled_from([b"x", b"a+b", b"\xc3\xa9t\xc3\xa9"]))
def test_same_logs_and_tx_as_one_value_at_a_time(pair, args, header):
    batched, plain = pair
    uri = ("/?" + "&".join("%s=%s" % (quote_from_bytes(k or b"k"), quote_from_bytes(v))
                           for k, v in args)).encode()
    kw = dict(uri=uri, headers=((b"x-h", header),))
    a, b = run(batched, **kw), run(plain, **kw)
    assert ids(a) == ids(b) and a.variables == b.variables


@pytest.mark.parametrize("query, logged", [
    (b"k=Z", [5, 6]),           # lower-cased "z" is outside 65-90 (rule 5's chain lowers)
    (b"k=%2500", [1, 5, 6]),    # urlDecodeUni makes a NUL of "%00" (rule 1)
    (b"k=%C3", [1, 3, 5, 6]),   # a truncated UTF-8 sequence
    (b"k=ABC&j=DEF", [5, 6])])  # (rule 6: a SHA-1 digest is binary)
def test_known_requests(pair, query, logged):
    batched, plain = pair
    assert ids(run(batched, b"/?" + query)) == ids(run(plain, b"/?" + query)) == logged
