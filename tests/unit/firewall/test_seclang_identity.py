"""identity.classify: a value without the chain's sensitive bytes leaves the chain as
itself (or its lower-case), checked against the transformations themselves."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.firewall.seclang import identity
from revproxy.firewall.seclang.transforms import TRANSFORMS

CLASSIFIABLE = sorted(identity.SENSITIVE)
# Pieces every transformation reacts to (escapes, comments, paths, spaces, UTF-8), plus
# letters and digits, so that random values often hold some sensitive byte and often none.
TOKENS = [b"%41", b"%u0041", b"%uff21", b"%", b"+", b"&amp;", b"&#65;", b"&#x41", b"&lt",
          b"\\x41", b"\\u0041", b"\\n", b"\\101", b"\\", b"/*", b"*/", b"--", b"<!--",
          b"-->", b"-", b"#", b"//", b"/./", b"/../", b"..", b".", b"/", b"\\..\\",
          b" ", b"  ", b"\t", b"\r\n", b"\v", b"\f", b"\0", b"\xa0", b"\xc3\xa9",
          b"\xe2\x82\xac", b"\xff", b"'", b'"', b"^", b",", b";", b" (", b" /", b"!",
          b"A", b"Z", b"a", b"z", b"0", b"9", b"_", b"0x41", b"Select", b"abc"]


def _apply(names, value):
    for n in names:
        value = TRANSFORMS[n](value)
    return value


@settings(max_examples=1500, deadline=None)
@given(names=st.lists(st.sampled_from(CLASSIFIABLE), min_size=1, max_size=6),
       value=st.lists(st.sampled_from(TOKENS), max_size=12).map(b"".join))
def test_a_value_without_sensitive_bytes_comes_out_as_itself_or_lowered(names, value):
    cls = identity.classify(names, [TRANSFORMS[n] for n in names])
    assert cls is not None
    if value.translate(None, cls[0]):
        return  # holds a sensitive byte: no claim
    want = value.lower() if cls[1] else value
    assert _apply(names, value) == want


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(CLASSIFIABLE),
       value=st.binary(max_size=32))
def test_one_transformation_on_any_bytes(name, value):
    cls = identity.classify([name], [TRANSFORMS[name]])
    if not value.translate(None, cls[0]):
        assert TRANSFORMS[name](value) == (value.lower() if cls[1] else value)


def test_chains_that_change_ordinary_input_are_not_classified():
    for name in ("base64decode", "hexdecode", "length", "md5", "sha1", "sqlhexdecode",
                 "urlencode", "uppercase", "parityeven7bit"):
        assert identity.classify(["lowercase", name],
                                 [TRANSFORMS["lowercase"], TRANSFORMS[name]]) is None


def test_a_function_that_is_not_the_shipped_one_is_not_classified():
    assert identity.classify(["lowercase"], [lambda v: v.upper()]) is None


def test_the_empty_chain_reacts_to_nothing():
    assert identity.EMPTY == identity.classify((), ())
    assert b"%&\\ \0".translate(None, identity.EMPTY[0]) == b""


def test_sensitive_bytes_are_what_the_table_says():
    cls = identity.classify(["urldecodeuni", "lowercase"],
                            [TRANSFORMS["urldecodeuni"], TRANSFORMS["lowercase"]])
    assert identity.sensitive_bytes(cls) == b"%+" and cls[1] is True


def test_patterns_for_joined_values_turn_text_anchors_into_line_anchors():
    from revproxy.firewall.seclang.prefilter import in_text
    assert in_text(rb"\Afoo\z") == rb"(?m)^foo$"
    assert in_text(rb"a\\zb") == rb"(?m)a\\zb"          # an escaped backslash, then z
    assert in_text(rb"x\\\zy") == rb"(?m)x\\$y"
    assert in_text(rb"(?i-m)x") is None                   # multi-line mode turned off


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.lists(st.sampled_from(TOKENS), max_size=5).map(b"".join),
                       min_size=1, max_size=5),
       pattern=st.sampled_from([rb"\A(?:abc|0x41)", rb"abc\z", rb"^a", rb"z$", rb"\A\z",
                                rb"^$", rb"(?i)select\z", rb"\A[0-9]+\z", rb"--$"]))
def test_a_pattern_matching_one_value_matches_the_joined_values(values, pattern):
    """The union's soundness: whatever value the pattern matches alone, its in_text form
    matches the values joined by newlines."""
    import pytest
    re2 = pytest.importorskip("re2", reason="google-re2 is not installed (PyPy)")
    from revproxy.firewall.seclang.prefilter import _options, in_text
    one = re2.compile(pattern, _options())
    alone = any(one.search(v) is not None for v in values)
    joined = re2.compile(in_text(pattern), _options()).search(b"\n".join(values))
    assert joined is not None or not alone


def _candidates(names, value):
    """multiMatch's definition: the value and every transformation output that changed
    its input."""
    out = [value]
    for n in names:
        nv = TRANSFORMS[n](value)
        if nv != value:
            out.append(nv)
        value = nv
    return out


@settings(max_examples=1500, deadline=None)
@given(names=st.lists(st.sampled_from(CLASSIFIABLE + ["base64decode", "hexdecode",
                                                      "lowercase", "cmdline", "length"]),
                      min_size=1, max_size=7),
       value=st.lists(st.sampled_from(TOKENS + [b"ZXZhbCg=", b"YWJj", b"4142"]),
                      max_size=12).map(b"".join))
def test_multimatch_candidates_with_runs_stepped_over_are_the_same(names, value):
    """Chains.candidates (runs of identity.step_runs stepped over when the value holds
    none of their sensitive bytes) gives every changed intermediate, in order."""
    from revproxy.firewall.seclang.chains import Chains
    from revproxy.firewall.seclang.rules import Rule

    rule = Rule("t", 1)
    rule.set_transforms(names, TRANSFORMS)
    assert [fn for _t, fns in rule.t_runs for fn in fns] == list(rule.t_funcs)
    chains = Chains(lambda *a: [])
    assert chains.candidates(rule, value) == _candidates(names, value)
    assert chains.candidates(rule, value) == _candidates(names, value)  # cached steps


def test_step_runs_group_the_classifiable_transformations():
    names = ["urldecodeuni", "jsdecode", "removewhitespace", "base64decode", "lowercase",
             "urldecodeuni"]
    runs = identity.step_runs(names, [TRANSFORMS[n] for n in names])
    assert [(t is not None, len(fns)) for t, fns in runs] == \
        [(True, 3), (False, 1), (False, 1), (True, 1)]
