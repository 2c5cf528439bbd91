"""Which bytes a transformation chain reacts to: skip the chain for values without them.

Each shipped transformation returns its input unchanged unless the input holds one of a
few *sensitive* bytes (urlDecodeUni: ``%`` and ``+``; htmlEntityDecode: ``&``; jsDecode:
``\\`` ...), and ``lowercase`` / ``cmdLine`` at most lower-case the ASCII letters of such an
input. So for a whole chain, ``classify`` gives the union of its transformations' sensitive
bytes and whether it lower-cases; a value holding none of those bytes comes out of the
chain as ``value`` or ``value.lower()``, with no transformation called. Benign values
(words, numbers, identifiers) hold none for most chains, so the engine neither transforms
them one chain at a time nor runs each chain's RE2 set on them (``union.Union``).

Lower-casing maps ASCII letters to letters, so it never adds a sensitive byte: the claim
holds link by link along the chain (tests/unit/firewall/test_seclang_identity.py checks it
with hypothesis against the transformations themselves).

A transformation that changes ordinary input (base64Decode, hexDecode, length, md5, sha1,
sqlHexDecode, urlEncode, uppercase, the parity ones) or one that is not the shipped
function makes the chain unclassifiable (None): it is always computed.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

from .transforms import TRANSFORMS

_SPACE = b" \t\n\v\f\r"
_HIGH = bytes(range(0x80, 0x100))

# Bytes that no shipped classifiable transformation reacts to (letters only through
# lower-casing, handled separately).
SAFE = (b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")

SENSITIVE = {
    "lowercase": b"",
    "trim": _SPACE, "trimleft": _SPACE, "trimright": _SPACE,
    "removenulls": b"\0", "replacenulls": b"\0",
    "removewhitespace": _SPACE + b"\xa0",
    "compresswhitespace": _SPACE + b"\xa0",
    "replacecomments": b"/",
    "removecommentschar": b"/*<-#",
    "removecomments": b"/<-#",
    "cmdline": b"\\\"'^,;" + _SPACE,
    "urldecode": b"%+", "urldecodeuni": b"%+",
    "utf8tounicode": _HIGH,
    "htmlentitydecode": b"&",
    "jsdecode": b"\\", "cssdecode": b"\\", "escapeseqdecode": b"\\",
    "normalisepath": b"./", "normalizepath": b"./",
    "normalisepathwin": b"./\\", "normalizepathwin": b"./\\",
}
LOWERING = frozenset(("lowercase", "cmdline"))

Class = Tuple[bytes, bool]  # (translate deletion table: every byte *not* sensitive, lowers)


def not_sensitive(sensitive: bytes) -> bytes:
    """The deletion table for ``bytes.translate``: ``value.translate(None, table)`` keeps
    only the sensitive bytes of ``value`` (empty: the chain leaves it alone)."""
    s = set(sensitive)
    return bytes(b for b in range(256) if b not in s)


def classify(names: Sequence[str], funcs: Sequence[Callable]) -> Optional[Class]:
    """(deletion table of the chain's non-sensitive bytes, lowers) or None (see the
    module doc). An empty chain is (every byte, False): nothing is sensitive."""
    sens = set()
    lowers = False
    for name, fn in zip(names, funcs):
        if name not in SENSITIVE or TRANSFORMS.get(name) is not fn:
            return None
        sens.update(SENSITIVE[name])
        lowers = lowers or name in LOWERING
    return not_sensitive(bytes(sorted(sens))), lowers


def sensitive_bytes(cls: Class) -> bytes:
    """The sensitive bytes of a classified chain (the complement of its table)."""
    drop = set(cls[0])
    return bytes(b for b in range(256) if b not in drop)


EMPTY: Class = (not_sensitive(b""), False)  # the empty chain


Run = Tuple[Optional[bytes], Tuple[Callable, ...]]


def step_runs(names: Sequence[str], funcs: Sequence[Callable]) -> Tuple[Run, ...]:
    """A chain cut into runs for multiMatch, whose every changed intermediate counts:
    ``(deletion table, functions)`` for a run of classifiable transformations that do not
    lower-case (a value with none of the run's sensitive bytes passes each of them
    unchanged, so the run adds no intermediate and can be stepped over), ``(None, (fn,))``
    for any other transformation (always computed)."""
    out: List[Run] = []
    run_names: List[str] = []
    run_funcs: List[Callable] = []

    def close() -> None:
        if run_names:
            cls = classify(run_names, run_funcs)
            if cls is None:
                out.extend((None, (fn,)) for fn in run_funcs)
            else:
                out.append((cls[0], tuple(run_funcs)))
            run_names.clear()
            run_funcs.clear()
    for name, fn in zip(names, funcs):
        single = classify((name,), (fn,))
        if single is None or single[1]:
            close()
            out.append((None, (fn,)))
        else:
            run_names.append(name)
            run_funcs.append(fn)
    close()
    return tuple(out)
