"""application/json request bodies -> ARGS_POST, flattened as Coraza does.

Keys: ``json`` for the document, ``.key`` for an object member, ``.N`` (0-based) for an array
element: ``{"a": {"b": 1}, "c": [true, null]}`` gives ``json.a.b=1``, ``json.c.0=true``,
``json.c.1=`` (the CRS 4 regression tests only pin the ``json.`` prefix, which ModSecurity v3
and Coraza share; ModSecurity v3 names array elements ``json.c.array_0``, Coraza ``json.c.0``,
and Coraza's form is the one revproxy's contract and the seclang reference use). Values:
strings decoded (UTF-8 bytes), numbers as written, ``true``/``false``, ``null`` as empty;
empty objects and arrays give nothing. Duplicate keys are all kept, in order.

The parser is iterative (no recursion, so no interpreter recursion limit): nesting deeper than
``max_depth`` (SecRequestBodyJsonDepthLimit) is an error, invalid JSON (RFC 8259, UTF-8,
no NaN/Infinity, one value) sets REQBODY_ERROR with a message; pairs read before the fault
are kept, as ModSecurity's streaming parser keeps them. Linear time.
"""

from __future__ import annotations

import re
from json.decoder import scanstring
from typing import Dict, List, Optional, Tuple

from revproxy.firewall.seclang.api import BodyResult

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_LITERALS = (("true", "true"), ("false", "false"), ("null", ""))


class _JSONError(ValueError):
    pass


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


class _Frame:
    """An open container. Its own path is built only when a value inside it is emitted
    (and then kept), so deep nesting without values costs no string building."""

    __slots__ = ("is_array", "count", "key", "parent", "name", "path")

    def __init__(self, is_array: bool, parent: "Optional[_Frame]", name: str) -> None:
        self.is_array = is_array
        self.count = 0
        self.key = "0"  # the current member's key, or element index
        self.parent = parent
        self.name = name  # this container's key in its parent
        self.path: Optional[str] = "json" if parent is None else None

    def member_path(self) -> str:
        chain = []
        frame: Optional[_Frame] = self
        while frame is not None and frame.path is None:
            chain.append(frame)
            frame = frame.parent
        for item in reversed(chain):
            assert item.parent is not None and item.parent.path is not None
            item.path = item.parent.path + "." + item.name
        assert self.path is not None
        return self.path + "." + self.key


class _Flattener:
    def __init__(self, text: str, max_args: int, max_depth: int) -> None:
        self.text = text
        self.max_args = max_args
        self.max_depth = max_depth
        self.args: List[Tuple[bytes, bytes]] = []
        self.over_limit = False

    def emit(self, frame: Optional[_Frame], value: str) -> None:
        if len(self.args) >= self.max_args:
            self.over_limit = True
        else:
            path = "json" if frame is None else frame.member_path()
            self.args.append((_encode(path), _encode(value)))

    def ws(self, pos: int) -> int:
        return _WS.match(self.text, pos).end()  # type: ignore[union-attr]

    def key(self, pos: int) -> Tuple[str, int]:
        """Read ``"key" :`` at ``pos``; return the key and the value's position."""
        if not self.text.startswith('"', pos):
            raise _JSONError("expected an object key at offset %d" % pos)
        try:
            name, pos = scanstring(self.text, pos + 1, True)
        except ValueError as exc:
            raise _JSONError(str(exc)) from None
        pos = self.ws(pos)
        if not self.text.startswith(":", pos):
            raise _JSONError("expected ':' at offset %d" % pos)
        return name, self.ws(pos + 1)

    def run(self) -> None:
        text = self.text
        frame: Optional[_Frame] = None  # the innermost open container
        depth = 0
        pos = self.ws(0)
        while True:
            char = text[pos:pos + 1]
            if char == "{" or char == "[":
                if depth >= self.max_depth:
                    raise _JSONError("nesting deeper than %d" % self.max_depth)
                is_array = char == "["
                frame = _Frame(is_array, frame, frame.key if frame is not None else "")
                depth += 1
                pos = self.ws(pos + 1)
                if not text.startswith("]" if is_array else "}", pos):
                    if not is_array:
                        frame.key, pos = self.key(pos)
                    continue
                frame = frame.parent
                depth -= 1
                pos += 1
            elif char == '"':
                try:
                    value, pos = scanstring(text, pos + 1, True)
                except ValueError as exc:
                    raise _JSONError(str(exc)) from None
                self.emit(frame, value)
            else:
                pos = self.scalar(pos, frame)
            pos = self.ws(pos)
            frame, depth, pos = self.after_value(frame, depth, pos)
            if frame is None and depth == 0:
                if pos != len(text):
                    raise _JSONError("extra data at offset %d" % pos)
                return

    def scalar(self, pos: int, frame: Optional[_Frame]) -> int:
        match = _NUMBER.match(self.text, pos)
        if match:
            self.emit(frame, match.group(0))
            return match.end()
        for literal, value in _LITERALS:
            if self.text.startswith(literal, pos):
                self.emit(frame, value)
                return pos + len(literal)
        if pos >= len(self.text):
            raise _JSONError("unexpected end of data")
        raise _JSONError("unexpected character %r at offset %d" % (self.text[pos], pos))

    def after_value(self, frame: Optional[_Frame], depth: int,
                    pos: int) -> Tuple[Optional[_Frame], int, int]:
        """Consume ``,`` / closing brackets after a value; return the container the next
        value goes in (None with depth 0: the document is complete) and its position."""
        text = self.text
        while frame is not None:
            char = text[pos:pos + 1]
            if char == ",":
                pos = self.ws(pos + 1)
                frame.count += 1
                if frame.is_array:
                    frame.key = str(frame.count)
                else:
                    frame.key, pos = self.key(pos)
                return frame, depth, pos
            if char != ("]" if frame.is_array else "}"):
                if pos >= len(text):
                    raise _JSONError("unexpected end of data")
                raise _JSONError("expected ',' or a closing bracket at offset %d" % pos)
            frame = frame.parent
            depth -= 1
            pos = self.ws(pos + 1)
        return None, 0, pos


def parse_json(data: bytes, *, max_args: int, max_depth: int) -> BodyResult:
    """Parse a JSON body into flattened ``args``. ``flags``: REQBODY_ERROR and
    REQBODY_PROCESSOR_ERROR (0 or 1), ARGS_LIMIT_EXCEEDED 1 when more than ``max_args``
    values were present (the rest are dropped, parsing goes on to validate the document).
    Never raises on bytes input."""
    flags: Dict[str, int] = {"REQBODY_ERROR": 0, "REQBODY_PROCESSOR_ERROR": 0}
    error = b""
    flattener = None
    try:
        text = data.decode("utf-8")
        flattener = _Flattener(text, max_args, max_depth)
        flattener.run()
    except UnicodeDecodeError as exc:
        error = ("JSON parsing error: invalid UTF-8 at offset %d" % exc.start).encode()
    except _JSONError as exc:
        error = ("JSON parsing error: %s" % exc).encode("utf-8", "replace")
    if error:
        flags["REQBODY_ERROR"] = flags["REQBODY_PROCESSOR_ERROR"] = 1
    args: Tuple[Tuple[bytes, bytes], ...] = ()
    if flattener is not None:
        args = tuple(flattener.args)
        if flattener.over_limit:
            flags["ARGS_LIMIT_EXCEEDED"] = 1
    return BodyResult(args=args, flags=flags, error=error, raw_length=len(data))
