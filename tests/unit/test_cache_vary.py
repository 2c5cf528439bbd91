"""Vary names and secondary keys (RFC 9111 §4.1)."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from revproxy.cache.vary import vary_key, vary_names


def test_vary_names_are_lowered_deduplicated_sorted():
    """§4.1: field names are case-insensitive; lines combine as one list."""
    h = [(b"vary", b"Accept-Encoding, accept"), (b"vary", b" ACCEPT ,, User-Agent")]
    assert vary_names(h) == (b"accept", b"accept-encoding", b"user-agent")


def test_vary_star_is_none_and_absent_vary_is_empty():
    """§4.1: Vary: * always fails to match; no Vary: nothing to match."""
    assert vary_names([(b"vary", b"accept, *")]) is None
    assert vary_names([]) == ()


def test_absent_and_empty_fields_differ():
    """§4.1: a field absent from the request is not the same as one present and empty."""
    names = (b"x-a",)
    assert vary_key(names, []) != vary_key(names, [(b"x-a", b"")])


def test_lines_combine_and_whitespace_is_trimmed():
    """§4.1: multiple field lines combine; OWS around values is not significant."""
    names = (b"x-a",)
    assert vary_key(names, [(b"x-a", b" 1"), (b"x-a", b"2 ")]) == vary_key(
        names, [(b"x-a", b"1, 2")])


def test_generic_values_keep_case_and_order():
    """§4.1: unknown fields are compared as sent (no semantic knowledge to normalise)."""
    names = (b"x-a",)
    assert vary_key(names, [(b"x-a", b"a, b")]) != vary_key(names, [(b"x-a", b"b, a")])
    assert vary_key(names, [(b"x-a", b"A")]) != vary_key(names, [(b"x-a", b"a")])


def test_accept_encoding_equivalences():
    """RFC 9110 §12.5.3 / §8.4.1: order, case, q=1, x-gzip and q=0 refusals are equivalent."""
    names = (b"accept-encoding",)

    def key(*values):
        return vary_key(names, [(b"accept-encoding", v) for v in values])

    assert key(b"gzip, br") == key(b"br,gzip") == key(b"BR", b"GZIP;q=1.000")
    assert key(b"x-gzip") == key(b"gzip")
    assert key(b"gzip;q=0") == key(b"")
    assert key(b"gzip, deflate;q=0") == key(b"gzip")
    assert key(b"gzip;q=0.5") == key(b"gzip; Q=0.50")


def test_accept_encoding_differences_are_kept():
    """RFC 9110 §12.5.3: q-values, identity;q=0 and * change the meaning."""
    names = (b"accept-encoding",)

    def key(value):
        return vary_key(names, [(b"accept-encoding", value)])

    assert key(b"gzip;q=0.5, br") != key(b"gzip, br")
    assert key(b"identity;q=0") != key(b"")
    assert key(b"*, gzip;q=0") != key(b"*")
    assert key(b"gzip") != key(b"br")


def test_accept_language_is_case_insensitive_and_ordered_by_q_only():
    """RFC 9110 §12.5.4 / §12.4.2 / RFC 5646: tags are case-insensitive; equal q-values are
    equal preferences, so the written order of a tie carries no meaning."""
    names = (b"accept-language",)

    def key(value):
        return vary_key(names, [(b"accept-language", value)])

    assert key(b"en-US ; q=0.5, FR") == key(b"en-us;q=0.5,fr")
    assert key(b"en, fr") == key(b"fr, en")
    assert key(b"de;q=0.5, en") == key(b"en, de;q=0.50")
    assert key(b"en;q=0, fr") == key(b"fr")  # q=0: not acceptable, as when absent
    assert key(b"*;q=0.1, en;q=0") != key(b"*;q=0.1")  # ...unless * would accept it
    assert key(b"en;q=0.5, fr") != key(b"en, fr;q=0.5")
    assert key(b"en") != key(b"fr")


def test_accept_ties_share_a_key_but_parameters_stay_with_their_range():
    names = (b"accept",)

    def key(value):
        return vary_key(names, [(b"accept", value)])

    assert key(b"text/html, application/json") == key(b"Application/JSON,text/html")
    assert key(b"text/html;level=1;q=0.5, */*;q=0.1") == key(b"*/*;q=0.1,text/html;LEVEL=1;q=0.5")
    assert key(b"text/html;level=1, text/plain") != key(b"text/html, text/plain;level=1")
    assert key(b"text/html;q=0.5") != key(b"text/html")
    assert key(b"text/html;q=2") == key(b"text/html;q=2")  # a bad q: the generic rule


def test_accept_lowers_media_range_but_not_parameter_values():
    """RFC 9110 §8.3.1: type, subtype and parameter names are case-insensitive."""
    names = (b"accept",)

    def key(value):
        return vary_key(names, [(b"accept", value)])

    assert key(b"Text/HTML ;Level=1") == key(b"text/html;level=1")
    assert key(b"text/html;x=A") != key(b"text/html;x=a")


def test_key_covers_every_name():
    """The key depends on each varying field."""
    names = (b"accept-encoding", b"x-a")
    base = [(b"accept-encoding", b"gzip"), (b"x-a", b"1")]
    assert vary_key(names, base) != vary_key(names, base[:1] + [(b"x-a", b"2")])
    assert vary_key((), base) == b""


_codings = st.sampled_from(["gzip", "br", "deflate", "zstd", "identity", "compress"])
_q = st.sampled_from([None, "1", "1.0", "1.000", "0.5", "0.50", "0.123", "0"])


@settings(max_examples=200)
@given(st.lists(st.tuples(_codings, _q), unique_by=lambda t: t[0], max_size=6), st.data())
def test_equivalent_accept_encoding_lists_share_a_key(members, data):
    """Any reordering, re-casing, re-spacing or line split of the list gives the same key."""
    def render(items):
        out = []
        for coding, q in items:
            coding = data.draw(st.sampled_from([coding, coding.upper()]))
            text = coding if q is None else coding + data.draw(
                st.sampled_from([";q=", " ; q=", ";Q="])) + q
            out.append(text)
        cut = data.draw(st.integers(0, len(out)))
        lines = [", ".join(out[:cut]), " ,".join(out[cut:])]
        return [(b"accept-encoding", line.encode()) for line in lines]

    shuffled = data.draw(st.permutations(members))
    names = (b"accept-encoding",)
    assert vary_key(names, render(members)) == vary_key(names, render(shuffled))


_languages = st.sampled_from(["en", "en-US", "fr", "de-CH", "*", "pt-BR"])


@settings(max_examples=200)
@given(st.lists(st.tuples(_languages, _q), unique_by=lambda t: t[0].lower(), max_size=6),
       st.data())
def test_equivalent_accept_language_lists_share_a_key(members, data):
    """Any reordering, re-casing, re-spacing or line split gives the same key."""
    def render(items):
        out = []
        for tag, q in items:
            tag = data.draw(st.sampled_from([tag, tag.upper(), tag.lower()]))
            out.append(tag if q is None else tag + data.draw(
                st.sampled_from([";q=", " ; q=", ";Q="])) + q)
        cut = data.draw(st.integers(0, len(out)))
        return [(b"accept-language", line.encode())
                for line in (", ".join(out[:cut]), " ,".join(out[cut:]))]

    shuffled = data.draw(st.permutations(members))
    names = (b"accept-language",)
    assert vary_key(names, render(members)) == vary_key(names, render(shuffled))


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from([b"vary", b"accept", b"accept-encoding",
                                           b"accept-language", b"x"]),
                          st.binary(max_size=30)), max_size=5))
def test_vary_never_raises_on_junk(headers):
    """Junk values give a key (bytes) and names (tuple or None), never an error."""
    names = vary_names(headers)
    assert names is None or isinstance(names, tuple)
    assert isinstance(vary_key((b"accept", b"accept-encoding", b"accept-language", b"x"),
                               headers), bytes)
