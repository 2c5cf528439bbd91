"""The atoms' tier of cleanskip (revproxy.firewall.seclang.atoms): once a request's pieces
(headers, request line, cookies, parsed body, other scalars) were recorded, the next
request made of them chooses its phase lists from a few lookups. A WAF using it logs and
decides exactly what the same rules loaded without any shortcut do, request after request:
attack values in a header, cookie, argument, file, part header, XML document or response
coming after the other pieces were seen clean, values moving from one key to another,
target removals on some requests only."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang import atoms, cleanskip
from tests.unit.firewall.seclang_helpers import run, same_outcome, view, waf, with_and_without

RULES = r"""
SecRuleEngine On
SecRequestBodyAccess On
SecResponseBodyAccess On
SecResponseBodyMimeType text/html
SecRule REQUEST_HEADERS:Content-Type "@rx ^text/xml" "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" "id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule ARGS_GET:skip "@streq 1" "id:3,phase:1,pass,nolog,ctl:ruleRemoveTargetById=20;ARGS:q"
SecRule ARGS_GET:force "@streq 1" "id:4,phase:1,pass,nolog,ctl:forceRequestBodyVariable=On"
SecRule ARGS_GET:asjson "@streq 1" "id:5,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQUEST_HEADERS|REQUEST_HEADERS_NAMES "@rx (?i)attack" "id:10,phase:1,pass,log"
SecRule REQUEST_HEADERS:X-Key "@streq evil" "id:11,phase:1,pass,log"
SecRule REQUEST_COOKIES|REQUEST_COOKIES_NAMES "@rx (?i)attack" "id:12,phase:1,pass,log"
SecRule REQUEST_COOKIES:sid "@rx ^0" "id:13,phase:1,pass,log"
SecRule ARGS_GET|ARGS_GET_NAMES "@rx (?i)attack" "id:14,phase:1,pass,log"
SecRule REQUEST_FILENAME|QUERY_STRING|REQUEST_LINE "@contains evil" "id:15,phase:1,pass,log"
SecRule REMOTE_ADDR "@ipMatch 10.9.0.0/16" "id:16,phase:1,pass,log"
SecRule &REQUEST_HEADERS:X-Key "@eq 2" "id:17,phase:1,pass,log"
SecRule &REQUEST_COOKIES "@gt 1" "id:18,phase:1,pass,log"
SecRule &ARGS_GET "@ge 2" "id:19,phase:1,pass,log"
SecRule REQUEST_METHOD "@streq GET" "id:33,phase:1,pass,log,chain"
    SecRule &REQUEST_HEADERS:User-Agent "@eq 0"
SecRule &ARGS_POST "@ge 2" "id:31,phase:2,pass,log"
SecRule &FILES "@eq 1" "id:32,phase:2,pass,log"
SecRule &RESPONSE_HEADERS:X-Leak "@eq 1" "id:42,phase:4,pass,log"
SecRule ARGS|ARGS_NAMES "@rx (?i)attack" "id:20,phase:2,pass,log"
SecRule ARGS:q "@streq evil" "id:21,phase:2,pass,log"
SecRule ARGS_POST|ARGS_POST_NAMES "@contains evil" "id:22,phase:2,pass,log"
SecRule FILES|FILES_NAMES|FILES_SIZES "@rx (?i)attack|^9" "id:23,phase:2,pass,log"
SecRule MULTIPART_PART_HEADERS "@rx (?i)attack" "id:24,phase:2,pass,log"
SecRule REQUEST_BODY "@contains evil" "id:25,phase:2,pass,log"
SecRule XML:/* "@contains evil" "id:26,phase:2,pass,log"
SecRule REQBODY_ERROR "!@eq 0" "id:28,phase:2,pass,log"
SecRule REQUEST_BODY_LENGTH "@gt 20" "id:29,phase:2,pass,log"
SecRule REQUEST_METHOD "@streq POST" "id:27,phase:2,pass,nolog,chain"
    SecRule ARGS_NAMES "@rx ^zz" "t:none"
SecRule RESPONSE_HEADERS|RESPONSE_HEADERS_NAMES "@rx (?i)attack" "id:30,phase:3,pass,log"
SecRule RESPONSE_HEADERS:X-Leak "@streq evil" "id:40,phase:4,pass,log"
SecRule RESPONSE_BODY|RESPONSE_STATUS "@rx evil|^5" "id:41,phase:4,pass,log"
"""

FORM = b"application/x-www-form-urlencoded"


def _multipart(name: bytes, filename: bytes, content: bytes) -> bytes:
    return (b"--b\r\nContent-Disposition: form-data; name=\"" + name + b"\"; filename=\""
            + filename + b"\"\r\nContent-Type: text/plain\r\n\r\n" + content
            + b"\r\n--b--\r\n")


BODIES = [
    None,
    (FORM, b"a=1&b=2"),
    (FORM, b"a=1"),
    (FORM, b"a=evil"),
    (FORM, b"attack=1"),
    (FORM, b"zz=1"),
    (b"application/json", b'{"k": "v"}'),
    (b"application/json", b'{"k": "attack"}'),
    (b"application/json", b'{"k": '),
    (b"application/json", b'{"k": "a long value, over twenty bytes"}'),
    (b"text/xml", b"<a><b>t</b></a>"),
    (b"text/xml", b"<a><b>evil</b></a>"),
    (b"multipart/form-data; boundary=b", _multipart(b"f", b"x.txt", b"hi")),
    (b"multipart/form-data; boundary=b", _multipart(b"f", b"attack.txt", b"hi")),
    (b"multipart/form-data; boundary=b", _multipart(b"attack", b"x.txt", b"hi")),
    (b"multipart/form-data; boundary=b", _multipart(b"f", b"x.txt", b"123456789")),
]
HEADERS = [(b"x-key", b"ok"), (b"x-key", b"evil"), (b"x-key", b"ok"), (b"user-agent", b"curl"),
           (b"user-agent", b"attack-bot"), (b"x-attack", b"1"), (b"x-other", b"evil"),
           (b"cookie", b"sid=1; a=2"), (b"cookie", b"sid=0x"), (b"cookie", b"attack=1"),
           (b"cookie", b"a=attack")]
URIS = [b"/", b"/p?q=1", b"/p?q=1&k=2", b"/p?q=evil", b"/p?q=evil&skip=1", b"/p?attack=1", b"/evil",
        b"/p?a=attack", b"/p?zz=1"]
RESPONSES = [None, (200, [(b"content-type", b"text/html")], b"<p>ok"),
             (200, [(b"content-type", b"text/html"), (b"x-leak", b"evil")], b"<p>ok"),
             (200, [(b"content-type", b"text/html"), (b"x-attack", b"1")], b"<p>evil"),
             (503, [(b"content-type", b"text/html")], b"<p>ok")]


def _request(uri=b"/", headers=(), body=None, response=None):
    kw = dict(uri=uri, headers=tuple(headers), response=response)
    if body is not None:
        ctype, raw = body
        kw.update(method=b"POST", body=raw, headers=tuple(headers) + ((b"content-type", ctype),))
    return kw


def _outcome(tx):
    got = tx.interruption
    return [m.rule_id for m in tx.matches], None if got is None else (got.action, got.rule_id)


@pytest.fixture
def pair():
    """(the rules with every shortcut, the same rules with no cleanskip at all)."""
    return with_and_without(cleanskip, RULES)


class _Spy:
    """Counts the phase starts the atoms chose a list for."""

    def __init__(self, monkeypatch):
        self.fast = []
        original = atoms.Atoms.start

        def start(obj, v, recs, *rest):
            got = original(obj, v, recs, *rest)
            self.fast.append(got is not None)
            return got
        monkeypatch.setattr(atoms.Atoms, "start", start)


def _same(pair, **kw):
    return same_outcome(pair, _outcome, **kw)


def test_the_third_identical_request_takes_its_lists_from_the_atoms(pair, monkeypatch):
    spy = _Spy(monkeypatch)
    req = _request(b"/p?q=1", [(b"user-agent", b"curl"), (b"cookie", b"sid=1; a=2")],
                   (FORM, b"a=1&b=2"), RESPONSES[1])
    for _ in range(2):  # seen once (the key only), then recorded with its feeds
        _same(pair, **req)
    assert not any(spy.fast)
    spy.fast.clear()
    _same(pair, **req)
    fast, _plain = pair
    assert spy.fast and all(spy.fast), spy.fast  # every phase with a plan
    assert set(fast.empty_plans) == {1, 2, 3, 4}


def test_a_new_piece_after_the_others_were_seen_clean_is_still_caught(pair):
    base = [(b"user-agent", b"curl"), (b"cookie", b"sid=1; a=2")]
    for _ in range(3):
        _same(pair, **_request(b"/p?q=1", base, (FORM, b"a=1&b=2")))
    cases = [
        (_request(b"/p?q=1", base + [(b"x-key", b"evil")], (FORM, b"a=1&b=2")), 11),
        (_request(b"/p?q=1", [(b"user-agent", b"curl"), (b"cookie", b"sid=0x")],
                  (FORM, b"a=1&b=2")), 13),
        (_request(b"/p?q=1", base + [(b"cookie", b"a=attack")], (FORM, b"a=1&b=2")), 12),
        (_request(b"/p?q=evil", base, (FORM, b"a=1&b=2")), 21),
        (_request(b"/p?q=1", base, (FORM, b"a=1&b=evil")), 22),
        (_request(b"/p?q=1", base, (FORM, b"a=1&b=2"),
                  (200, [(b"content-type", b"text/html"), (b"x-leak", b"evil")], b"")), 40),
    ]
    for req, rule in cases:
        logged, _ = _same(pair, **req)
        assert rule in logged, (req, logged)


@pytest.mark.parametrize("plain, changed, rule", [
    # the same JSON body: REQUEST_BODY is populated only when forced (4)
    (b"/p", b"/p?force=1", 25),
    # the same XML document parsed as JSON (5): a JSON error
    (b"/p?asjson=0", b"/p?asjson=1", 28),
])
def test_the_body_atom_holds_what_the_body_scalars_depend_on(pair, plain, changed, rule):
    """The body's scalars come from the body atom: the processor the intake used and
    whether REQUEST_BODY is populated are part of it, not only the bytes."""
    ctype = b"application/json" if rule == 25 else b"text/xml"
    body = (ctype, b'{"k": "evil"}' if rule == 25 else b"<a>1</a>")
    for _ in range(3):
        logged, _ = _same(pair, **_request(plain, body=body))
        assert rule not in logged
    for _ in range(3):  # the other request line recorded too, with another body
        _same(pair, **_request(changed, body=(ctype, b'{"z": 1}')))
    logged, _ = _same(pair, **_request(changed, body=body))  # every atom recorded
    assert rule in logged


def test_a_value_seen_clean_under_one_key_is_read_again_under_another(pair):
    """``evil`` in X-Other is clean for 11 (it reads X-Key only); the same value in X-Key
    is a different atom."""
    for _ in range(3):
        logged, _ = _same(pair, **_request(headers=[(b"x-other", b"evil")]))
        assert 11 not in logged
    logged, _ = _same(pair, **_request(headers=[(b"x-key", b"evil")]))
    assert 11 in logged


def test_an_xml_document_always_runs_its_readers(pair, monkeypatch):
    spy = _Spy(monkeypatch)
    clean = _request(body=(b"text/xml", b"<a><b>t</b></a>"))
    for _ in range(3):
        _same(pair, **clean)
    assert any(spy.fast)
    logged, _ = _same(pair, **_request(body=(b"text/xml", b"<a><b>evil</b></a>")))
    assert 26 in logged


def test_atoms_learned_under_a_target_removal_serve_only_requests_with_it(pair):
    for _ in range(3):  # ARGS:q removed from 20: "attack" in q is not read by 20
        logged, _ = _same(pair, **_request(b"/p?q=attack&skip=1"))
        assert 20 not in logged
    logged, _ = _same(pair, **_request(b"/p?q=attack"))
    assert 20 in logged


def test_a_kept_header_list_serves_only_its_removals_signature():
    """The same header list under two removal signatures: with ``ARGS_GET:hskip`` the
    header ``x-key`` is not read by 50 (its readers are clean for it there), without it
    it is, and it logs. The list's kept answer must not cross from one to the other."""
    rules = r"""
SecRuleEngine On
SecRule ARGS_GET:hskip "@streq 1" "id:3,phase:1,pass,nolog,ctl:ruleRemoveTargetById=50;REQUEST_HEADERS:x-key"
SecRule REQUEST_HEADERS "@rx (?i)attack" "id:50,phase:2,pass,log"
"""
    w = waf(rules)
    headers = [(b"x-key", b"attack"), (b"user-agent", b"curl")]
    plain = _request(b"/p", headers)
    skipped = _request(b"/p?hskip=1", headers)
    for _ in range(4):
        assert 50 in [m.rule_id for m in run(w, **plain).matches]
    for _ in range(4):
        assert 50 not in [m.rule_id for m in run(w, **skipped).matches]
    for _ in range(2):
        assert 50 in [m.rule_id for m in run(w, **plain).matches]


def test_long_pieces_are_never_recorded(pair):
    fast, _plain = pair
    long = b"a" * (cleanskip.VALUE_MAX + 1)
    for _ in range(3):
        _same(pair, **_request(b"/p?q=" + long, [(b"x-key", long)]))
    for plan in fast.empty_plans.values():
        for recs in plan.atom_recs.values():
            for record in recs:
                assert not any(long in part for key in record for part in key
                               if isinstance(part, bytes))


def test_without_the_shipped_parsers_there_is_no_atoms_tier():
    from revproxy.firewall.seclang.engine import default_components
    comps = default_components()
    own = comps._replace(parse_cookies=lambda values: ())
    assert all(p.atoms is None for p in waf(RULES, components=own).empty_plans.values())
    assert all(p.atoms is not None for p in waf(RULES).empty_plans.values())


def test_long_header_lists_are_not_kept_whole(pair):
    """The header lists kept whole (``Plan.atom_heads``, at most ``HEADS_MAX`` a phase,
    whatever the removals' signatures) are bounded in bytes: a long one is looked up
    header by header on every request."""
    fast, _plain = pair
    long = [(b"x-key", b"b" * atoms.HEADS_BYTES)]
    short = [(b"user-agent", b"curl")]
    for _ in range(4):
        _same(pair, **_request(b"/p?q=1", long))
        _same(pair, **_request(b"/p?q=1", short))
    kept = [k for plan in fast.empty_plans.values() for k in plan.atom_heads]
    assert kept and all(long[0] not in k for k in kept)


def test_a_kept_header_list_follows_what_the_records_learn():
    """A header list's answer is kept with the records' version; what a phase then
    learns (a reader found clean for a header, ``Atoms.credit``) gives a new version, and
    the next answer holds the reader (kept, the list would run it again forever). A
    stale answer is never wrong, only slower: the records only ever learn facts."""
    w = waf(RULES)
    req = _request(b"/p?q=1", [(b"user-agent", b"curl")])
    for _ in range(3):
        run(w, **req)
    plan = w.empty_plans[1]
    recs, heads = plan.atom_recs[()], plan.atom_heads
    (key, (feeds, clean)), = [(k, e) for k, e in recs[0].items() if k[0] == b"user-agent"]
    bit = plan.atoms.reader_mask(feeds) & clean
    bit &= -bit  # one reader of the header, known clean for it
    recs[0][key] = (feeds, clean & ~bit)  # as if not learnt yet
    heads.clear()
    v = w.transaction(view(req["uri"], headers=req["headers"])).vars
    assert not plan.atoms.start(v, recs, heads, plan.atoms_version)[1] & bit
    assert heads  # (kept without the reader)
    run(w, **req)  # the reader runs, is found clean and credited
    assert recs[0][key][1] & bit
    assert plan.atoms.start(v, recs, heads, plan.atoms_version)[1] & bit


requests = st.builds(
    _request, st.sampled_from(URIS),
    st.lists(st.sampled_from(HEADERS), max_size=3),
    st.sampled_from(BODIES), st.sampled_from(RESPONSES))


@settings(max_examples=120, deadline=None)
@given(st.lists(requests, min_size=1, max_size=16))
def test_random_request_sequences_decide_as_without_shortcuts(reqs):
    """Each request three times in a row (seen once, recorded, taken from the atoms), in
    a random sequence of requests sharing pieces."""
    pair = with_and_without(cleanskip, RULES)
    for req in reqs:
        for _ in range(3):
            _same(pair, **req)
