"""Macro expansion (macros.py): the compiled steps give what reading each reference through
the transaction's ``macro_value`` gives."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang.macros import Macro
from tests.unit.firewall.seclang_helpers import view, waf

W = waf('SecAction "id:1,phase:1,pass,nolog"')

REFS = ["%{tx.score}", "%{TX.Score}", "%{tx.missing}", "%{tx.0}", "%{tx}", "%{ip.hits}",
        "%{env.mode}", "%{global.x}", "%{REQUEST_HEADERS.host}", "%{request_method}",
        "%{MATCHED_VAR}", "%{REQUEST_HEADERS}", "%{rule.id}", "%{unknown.x}", "%{tx:score}"]
PARTS = st.lists(st.sampled_from(REFS) | st.text(alphabet="ab %{}.-", max_size=6),
                 max_size=6)


def _reference(macro, tx):
    out = []
    for p in macro.parts:
        out.append(p if isinstance(p, bytes) else tx.macro_value(p[0], p[1]))
    return b"".join(out)


@settings(max_examples=300, deadline=None)
@given(PARTS, st.dictionaries(st.sampled_from(["score", "0", "missing"]),
                              st.binary(max_size=4), max_size=3))
def test_expansion_reads_what_macro_value_reads(parts, tx_values):
    tx = W.transaction(view(b"/p?q=1"))
    tx.stores["tx"].update(tx_values)
    tx.stores["ip"]["hits"] = b"7"
    tx.stores["env"]["mode"] = b"m"
    macro = Macro("".join(parts))
    assert macro.expand(tx) == _reference(macro, tx)


def test_store_references_are_read_directly():
    tx = W.transaction(view())
    tx.stores["tx"]["score"] = b"5"
    assert Macro("a%{tx.score}b%{tx}c%{tx.none}").expand(tx) == b"a5bc"
    assert Macro("%{REQUEST_HEADERS.host}").expand(tx) == b"example.com"
