"""Accept-Encoding negotiation (RFC 9110 §12.5.3): what the chooser may and may not pick."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from revproxy.compression.negotiate import acceptable, choose, parse

OFFER = (b"br", b"gzip")


def test_absent_field_gets_identity():
    """A request without Accept-Encoding is answered in identity (it may not decode)."""
    assert choose([], OFFER) is None


def test_empty_field_gets_identity():
    """An empty Accept-Encoding means only identity is acceptable."""
    assert choose([b""], OFFER) is None


def test_proxy_order_breaks_ties():
    """Equal q-values: the proxy's preference order decides."""
    assert choose([b"gzip, br"], OFFER) == b"br"
    assert choose([b"gzip, br"], (b"gzip", b"br")) == b"gzip"


def test_highest_q_wins():
    """A higher q wins over the proxy's order."""
    assert choose([b"br;q=0.5, gzip;q=0.8"], OFFER) == b"gzip"


def test_q_zero_refuses_a_coding():
    """gzip;q=0 is 'not acceptable': never chosen."""
    assert choose([b"gzip;q=0, br;q=0.1"], OFFER) == b"br"
    assert choose([b"gzip;q=0"], (b"gzip",)) is None


def test_star_covers_unlisted_codings():
    """'*' gives its q to every coding not listed; a listed q=0 stays refused."""
    assert choose([b"*"], OFFER) == b"br"
    assert choose([b"br;q=0, *"], OFFER) == b"gzip"
    assert choose([b"*;q=0"], OFFER) is None


def test_identity_preferred_explicitly_wins():
    """identity ranked above every offered coding: identity."""
    assert choose([b"gzip;q=0.5, identity"], (b"gzip",)) is None
    assert choose([b"gzip, identity;q=0.5"], (b"gzip",)) == b"gzip"


def test_identity_refused_and_nothing_offered_falls_back_to_identity():
    """identity;q=0 with no acceptable coding: identity anyway (no 406)."""
    assert choose([b"identity;q=0, deflate"], (b"gzip",)) is None


def test_case_aliases_lines_and_whitespace():
    """Codings are case-insensitive, x-gzip is gzip, several lines combine."""
    assert choose([b"X-GZIP ; Q=0.9"], (b"gzip",)) == b"gzip"
    assert choose([b"deflate", b" gzip "], (b"gzip",)) == b"gzip"


def test_malformed_members_grant_nothing():
    """A bad q-value or syntax ignores that member only."""
    assert choose([b"gzip;q=2"], (b"gzip",)) is None
    assert choose([b"gzip;q=0.1234"], (b"gzip",)) is None
    assert choose([b"gzip;level=1"], (b"gzip",)) is None
    assert choose([b"g zip, gzip;q=0.3"], (b"gzip",)) == b"gzip"


def test_member_count_is_bounded():
    """A huge list stops being read after 64 members (bounded work per request)."""
    value = b", ".join([b"c%d" % i for i in range(100)] + [b"gzip"])
    assert choose([value], (b"gzip",)) is None


_codings = st.sampled_from([b"gzip", b"br", b"zstd", b"identity", b"*", b"deflate", b"x-gzip",
                            b"GZIP", b"Br"])
_q = st.one_of(st.none(), st.sampled_from([b"0", b"0.0", b"0.001", b"0.5", b"1", b"1.000",
                                            b"0.999", b"2", b"0.1234", b"abc"]))
_member = st.tuples(_codings, _q).map(lambda m: m[0] if m[1] is None else m[0] + b";q=" + m[1])
_field = st.lists(_member, max_size=8).map(lambda ms: b", ".join(ms))
_offer = st.lists(st.sampled_from([b"gzip", b"br", b"zstd"]), unique=True, max_size=3)


@given(st.lists(_field, min_size=1, max_size=3), _offer)
def test_chooser_never_picks_a_refused_coding(values, offered):
    """Whatever the field says, a chosen coding is offered and has q > 0, and no offered
    coding has a strictly higher q."""
    chosen = choose(values, tuple(offered))
    weights = parse(values)
    if chosen is None:
        return
    assert chosen in offered
    assert acceptable(weights, chosen) > 0
    assert all(acceptable(weights, other) <= acceptable(weights, chosen) for other in offered)
    identity = weights.get(b"identity")
    assert identity is None or identity <= acceptable(weights, chosen)


@given(st.lists(_field, min_size=1, max_size=3), _offer)
def test_chooser_compresses_when_something_offered_is_acceptable(values, offered):
    """Identity is chosen only when no offered coding is acceptable or identity is ranked
    above them all."""
    weights = parse(values)
    best = max([acceptable(weights, c) for c in offered] or [0])
    if choose(values, tuple(offered)) is None:
        assert best == 0 or weights.get(b"identity", -1) > best
