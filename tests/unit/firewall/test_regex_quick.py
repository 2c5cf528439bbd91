"""@rx with RE2: the pattern alone in an RE2 set answers "no match" first
(regex.quick_match), and a match's groups come from RE2's C spans rather than the
wrapper's match object; every search must give what the plain compiled pattern, searched
through the wrapper, gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang import regex

PATTERNS = [rb"(?i)<script[^>]*>", rb"^\d+$", rb"\bunion\b.{1,20}\bselect\b", rb"a|b$",
            rb"(?:\.\./)+", rb"\A[\x00-\x7f]*\z", rb"(x)?(y)", rb"[^\w\s]{3}", rb"\xe9|\xff",
            rb"(?m)^end$", rb"", rb"(a)|(b)(x)?", rb"(?i)(sel)(ect)?(1)?(2)?(3)?(4)?(5)?(6)?(7)?(8)?(y)",
            rb"^(\.[^.]+)$|([\w]+)"]
PIECES = [b"<script>", b"<SCRIPT src=x>", b"union", b" all ", b"select", b"../", b"123",
          b"a", b"b", b"x", b"y", b"\n", b"end", b"\xe9", b"\xff", b"!!!", b" ", b"\x00"]


@pytest.fixture(scope="module", params=PATTERNS)
def pair(request):
    if not regex.RE2_AVAILABLE:
        pytest.skip("google-re2 is not installed (PyPy)")
    quick = regex.compile_re2(request.param)
    saved = regex.QUICK
    regex.QUICK = False
    try:
        plain = regex.compile_re2(request.param)
    finally:
        regex.QUICK = saved
    plain._spans = None  # groups through the wrapper's match object
    assert quick._quick is not None and plain._quick is None and quick._spans is not None
    return quick, plain


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=8).map(b"".join))
def test_search_with_the_quick_no_is_the_plain_search(pair, data):
    quick, plain = pair
    assert quick.search(data) == plain.search(data)
