"""A phase union's "maybe" confirmed on the group's own values joined (Union.confirm), a
superset where a pattern may match across two joined values (the rule then refutes it):
the logs must be those of the rules loaded without the prefilter."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

import pytest
from hypothesis import given, settings, strategies as st

from tests.unit.firewall.seclang_helpers import ids, run, with_and_without_prefilter

RULES = r"""
SecRule ARGS "@rx a.b" "id:1,phase:2,pass,log,t:none"
SecRule ARGS "@rx x\s+y" "id:2,phase:2,pass,log,t:none"
SecRule ARGS "@rx ^end$" "id:3,phase:2,pass,log,t:none,t:lowercase"
SecRule ARGS|ARGS_NAMES "@rx [^z]{3}q" "id:4,phase:2,pass,log,t:none,t:urlDecodeUni"
SecRule ARGS "@pm evil" "id:5,phase:2,pass,log,t:none,t:lowercase,multiMatch"
SecRule ARGS "@rx b$" "id:6,phase:2,pass,log,t:none,t:lowercase"
"""

PIECES = [b"a", b"b", b"x", b"y", b" ", b"END", b"end", b"q", b"%41", b"+", b"evil", b"EVIL",
          b"z", b"zz", b"B", b"-", b"\n"]


@pytest.fixture(scope="module")
def pair():
    return with_and_without_prefilter(RULES)


def _uri(values):
    return ("/?" + "&".join("k%d=%s" % (i, quote_from_bytes(v))
                            for i, v in enumerate(values))).encode()


def test_the_rules_take_part_in_a_union(pair):
    fast, _ = pair
    assert all(r.pre is not None and r.pre[0].union is not None for r in fast.all_rules)


def test_a_match_across_two_values_logs_nothing(pair):
    """Ten values: "a" ends one and "b" starts the next ("a\\nb" matches a.b joined)."""
    fast, plain = pair
    values = [b"a", b"b", b"x", b"y"] + [b"w"] * 6
    assert ids(run(fast, _uri(values))) == ids(run(plain, _uri(values))) == [6]
    values[0] = b"a-b"
    assert ids(run(fast, _uri(values))) == ids(run(plain, _uri(values))) == [1, 6]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=4).map(b"".join),
                min_size=1, max_size=14))
def test_random_arguments_log_the_same_ids(pair, values):
    fast, plain = pair
    assert ids(run(fast, _uri(values))) == ids(run(plain, _uri(values)))
