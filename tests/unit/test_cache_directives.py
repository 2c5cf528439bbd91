"""Cache-Control parsing and delta-seconds (RFC 9111 §5.2, §1.2.2)."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from revproxy.cache.directives import (
    DELTA_SECONDS_MAX, INVALID, delta_seconds, first_field, get_field, parse_cache_control,
)

TCHARS = "!#$%&'*+-.^_`|~abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def test_directive_names_are_lower_cased_and_arguments_kept():
    """§5.2: directive names are case-insensitive; arguments keep their text."""
    cc = parse_cache_control([b"Max-Age=60, PUBLIC, X-Ext=AbC"])
    assert dict(cc) == {"max-age": "60", "public": None, "x-ext": "AbC"}


def test_field_lines_are_combined_as_one_list():
    """RFC 9110 §5.3: several Cache-Control lines read as one comma list, in order."""
    cc = parse_cache_control([b"no-cache", b"max-age=5, must-revalidate"])
    assert list(cc) == ["no-cache", "max-age", "must-revalidate"]


def test_quoted_argument_may_hold_commas_and_escapes():
    """§5.2 + RFC 9110 §5.6.4: a quoted-string argument is unquoted, commas and escapes kept."""
    cc = parse_cache_control([b'no-cache="set-cookie, x-a", private="a\\"b\\\\c", max-age=1'])
    assert cc["no-cache"] == "set-cookie, x-a"
    assert cc["private"] == 'a"b\\c'
    assert cc.seconds("max-age") == 1


def test_quoted_delta_seconds_is_accepted():
    """§5.2: recipients ought to accept both token and quoted forms: max-age="60" is 60."""
    assert parse_cache_control([b'max-age="60"']).seconds("max-age") == 60


def test_whitespace_around_members_is_tolerated():
    """RFC 9110 §5.6.1: OWS around list members and empty members are ignored."""
    cc = parse_cache_control([b" \t, max-age=7 ,, \tno-store\t, "])
    assert dict(cc) == {"max-age": "7", "no-store": None}


def test_first_occurrence_of_a_repeated_directive_wins():
    """§4.2.1: with two values of one directive we use the first (documented choice)."""
    cc = parse_cache_control([b"max-age=10", b"max-age=0"])
    assert cc.seconds("max-age") == 10


def test_space_around_equals_makes_the_argument_invalid():
    """§5.2 grammar has no OWS around '='; such a max-age is invalid, hence stale (§4.2.1)."""
    for line in (b"max-age =60", b"max-age= 60"):
        cc = parse_cache_control([line])
        assert "max-age" in cc and cc.seconds("max-age") == INVALID


def test_trailing_junk_keeps_boolean_directives_effective():
    """A malformed member still counts as its directive: no-store;x is honoured (restrictive)."""
    cc = parse_cache_control([b"no-store;x, max-age=60;y"])
    assert "no-store" in cc
    assert cc.seconds("max-age") == INVALID


def test_non_integer_delta_seconds_is_invalid():
    """§1.2.2: delta-seconds is 1*DIGIT; decimals, signs and empty values are invalid."""
    for arg in (b"1.5", b"-1", b"+1", b"", b"0x10", b'" 5"'):
        assert parse_cache_control([b"max-age=" + arg]).seconds("max-age") == INVALID, arg


def test_seconds_of_absent_directive_is_none():
    """An absent directive reads None, unlike an invalid one (INVALID)."""
    assert parse_cache_control([b"public"]).seconds("max-age") is None


def test_delta_seconds_table():
    """§1.2.2: digits only; a value beyond 2**31 is taken as 2**31."""
    assert delta_seconds("0") == 0
    assert delta_seconds(b"0042") == 42
    assert delta_seconds(str(2 ** 31)) == DELTA_SECONDS_MAX
    assert delta_seconds(str(2 ** 31 + 1)) == DELTA_SECONDS_MAX
    assert delta_seconds("9" * 60) == DELTA_SECONDS_MAX
    for junk in ("", " 1", "1 ", "-1", "+1", "1.0", "1e3", None, "٣"):
        assert delta_seconds(junk) is None, junk


def test_field_helpers_keep_order():
    """get_field returns every value in order; first_field the first or None."""
    headers = [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")]
    assert get_field(headers, b"a") == [b"1", b"3"]
    assert first_field(headers, b"a") == b"1"
    assert first_field(headers, b"c") is None


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=60), max_size=4))
def test_parse_never_raises_on_junk(lines):
    """Any bytes parse to a mapping of lower-case names to str/None, never an exception."""
    cc = parse_cache_control(lines)
    for name, value in cc.items():
        assert name == name.lower() and name
        assert value is None or isinstance(value, str)
        cc.seconds(name)


_token = st.text(alphabet=TCHARS, min_size=1, max_size=8)
_arg = st.one_of(st.none(), _token, st.text(alphabet=st.characters(
    min_codepoint=0x20, max_codepoint=0x7e), max_size=10))


def _quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@settings(max_examples=200)
@given(st.dictionaries(_token.map(str.lower), _arg, max_size=6), st.data())
def test_serialised_directives_parse_back(directives, data):
    """Whatever the quoting, spacing and split across lines, the directives read back."""
    members = []
    for name, arg in directives.items():
        name = data.draw(st.sampled_from([name, name.upper()]))
        if arg is None:
            members.append(name)
        elif all(c in TCHARS for c in arg) and arg and data.draw(st.booleans()):
            members.append(name + "=" + arg)
        else:
            members.append(name + "=" + _quote(arg))
    cut = data.draw(st.integers(0, len(members)))
    lines = [" , ".join(members[:cut]), ",".join(members[cut:])]
    assert dict(parse_cache_control([line.encode("latin-1") for line in lines])) == directives


def test_bare_private_after_qualified_one_applies_to_the_whole_response():
    """``private="a", private``: the bare one wins (hypothesis found it storing such a response)."""
    from revproxy.cache.directives import parse_cache_control, unqualified

    for line in (b'max-age=60, private="a", private', b'no-cache="x", no-cache'):
        cc = parse_cache_control([line])
        name = line.split(b",")[-1].strip().decode()
        assert unqualified(cc, name)
    assert unqualified(parse_cache_control([b'private, private="a"']), "private")
