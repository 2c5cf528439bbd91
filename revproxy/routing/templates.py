"""The small template language of route values (redirect targets, header values, paths).

A template is text with placeholders:

* ``{host}`` the client's Host (as sent), ``{path}`` the normalised path, ``{uri}`` the
  original target in origin-form (path and query, as the client sent them), ``{query}`` the
  raw query without ``?`` ("" when none), ``{scheme}`` (``http``/``https``), ``{request_id}``,
  ``{client_ip}``, ``{route}`` (the route's name), ``{member}`` (the member that answered;
  response side only);
* ``$1`` .. ``$9`` or ``{1}`` .. ``{99}``: a capture of the route's regex (``rewrite.regex``
  when it matched, else ``path_regex``); a capture that did not take part is "";
* ``{{``, ``}}`` and ``$$`` are a literal ``{``, ``}`` and ``$``.

``compile_template`` checks a template once, at config load: an unknown name, an unbalanced
brace, a control character or a placeholder not allowed where the template is used raises
``ValueError`` with the reason. ``Template.render`` is pure: it reads the values from an
object with the attributes above (``TemplateValues``) and returns bytes. Rendering never
produces CR, LF or NUL: the values come from a strictly parsed head, and ``render`` checks
anyway (``ValueError``), so a header can never be split by a value.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence, Tuple, Union

NAMES = ("host", "path", "uri", "query", "scheme", "request_id", "client_ip", "route", "member")
REQUEST_NAMES = tuple(name for name in NAMES if name != "member")

_TOKEN = re.compile(r"\{\{|\}\}|\$\$|\$([0-9])|\{([A-Za-z_0-9]*)\}|[{}$]")
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
_UNSAFE_OUTPUT = re.compile(rb"[\r\n\x00]")

# Values already in URI-encoded form (from the target): their "%" escapes are kept as they are.
_ENCODED = frozenset(["path", "uri", "query"])

Part = Union[bytes, str, int]  # literal bytes, a value name, a capture number


class TemplateValues:
    """The values a template reads, built from one request (pure data, bytes)."""

    __slots__ = ("host", "path", "uri", "query", "scheme", "request_id", "client_ip", "route",
                 "member", "captures")

    def __init__(self, host=b"", path=b"/", uri=b"/", query=b"", scheme=b"http",
                 request_id=b"-", client_ip=b"", route=b"", member=b"", captures=()):
        self.host = host
        self.path = path
        self.uri = uri
        self.query = query
        self.scheme = scheme
        self.request_id = request_id
        self.client_ip = client_ip
        self.route = route
        self.member = member
        self.captures = captures  # tuple of str or None


class Template:
    """A compiled template; ``text`` is its source. ``constant`` is its bytes when it has no
    placeholder (rendering it costs nothing), else None."""

    __slots__ = ("text", "parts", "constant", "escape")

    def __init__(self, text: str, parts: Sequence[Part], escape=None) -> None:
        self.text = text
        self.parts = tuple(parts)
        # (value bytes, already URI-encoded?) -> bytes, applied to substituted values; or None
        self.escape = escape
        literal = all(isinstance(part, bytes) for part in self.parts)
        self.constant = b"".join(self.parts) if literal else None  # type: ignore[arg-type]

    def render(self, values: TemplateValues) -> bytes:
        if self.constant is not None:
            return self.constant
        out = []
        escape = self.escape
        for part in self.parts:
            if isinstance(part, bytes):
                out.append(part)
                continue
            if isinstance(part, int):
                captures = values.captures
                value = captures[part - 1] if part <= len(captures) else None
                value = b"" if value is None else value.encode("latin-1")
                encoded = True
            else:
                value = getattr(values, part)
                encoded = part in _ENCODED
            out.append(escape(value, encoded) if escape is not None else value)
        result = b"".join(out)
        if _UNSAFE_OUTPUT.search(result) is not None:
            raise ValueError("template %r rendered a CR, LF or NUL" % self.text)
        return result

    def __repr__(self):
        return "<Template %r>" % self.text

    def __eq__(self, other):
        return isinstance(other, Template) and other.text == self.text

    def __hash__(self):
        return hash(self.text)


def compile_template(text: str, allowed: Tuple[str, ...] = REQUEST_NAMES, escape=None,
                     literal_check=None) -> Template:
    """Compile ``text``; ``allowed`` lists the value names it may use, ``escape`` is applied
    to substituted values, ``literal_check(str)`` may refuse literal text (ValueError)."""
    if not isinstance(text, str):
        raise ValueError("expected a string")
    if _FORBIDDEN.search(text):
        raise ValueError("expected no control characters (CR, LF, tab...)")
    parts = []
    literal = []
    position = 0
    for match in _TOKEN.finditer(text):
        literal.append(text[position:match.start()])
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}", "$$"):
            literal.append(token[0])
            continue
        if match.group(1) is not None:
            number: Optional[int] = int(match.group(1))
            name = None
        elif match.group(2) is not None:
            name = match.group(2)
            number = int(name) if name.isdigit() else None
        else:
            raise ValueError("unbalanced %r at offset %d (write %s for a literal one)"
                             % (token, match.start(), token * 2))
        if number is not None:
            if number < 1:
                raise ValueError("captures are numbered from 1, not %r" % token)
            _flush(literal, parts, literal_check)
            parts.append(number)
            continue
        if name not in allowed:
            where = "" if name in NAMES else "unknown name; "
            raise ValueError("%s{%s} is not available here; expected one of: %s"
                             % (where, name, ", ".join("{%s}" % n for n in allowed)))
        _flush(literal, parts, literal_check)
        parts.append(name)
    literal.append(text[position:])
    _flush(literal, parts, literal_check)
    return Template(text, parts, escape)


def _flush(literal, parts, literal_check) -> None:
    joined = "".join(literal)
    del literal[:]
    if not joined:
        return
    if literal_check is not None:
        literal_check(joined)
    try:
        parts.append(joined.encode("ascii"))
    except UnicodeEncodeError:
        raise ValueError("expected ASCII text (percent-encode other characters)") from None


# -- escapes for the places a template lands ---------------------------------------------------
_PATH_UNSAFE = re.compile(rb"[^\x21-\x7e]|[#?\\]")
_QUERY_UNSAFE = re.compile(rb"[^\x21-\x7e]|[#\\]")
_URL_UNSAFE = re.compile(rb"[^\x21-\x7e]|[\\]")


def _percent(match: "re.Match[bytes]") -> bytes:
    return b"%%%02X" % ord(match.group(0))


def _escaper(unsafe: "re.Pattern[bytes]"):
    with_percent = re.compile(unsafe.pattern + rb"|%")

    def escape(value: bytes, encoded: bool) -> bytes:
        """Percent-encode what would end or corrupt the component (``?``, ``#``, space,
        controls, non-ASCII, backslash); ``%`` too unless the value is already URI-encoded
        (path, query, captures: their escapes are kept, never encoded twice)."""
        return (unsafe if encoded else with_percent).sub(_percent, value)

    return escape


escape_path_value = _escaper(_PATH_UNSAFE)
escape_query_value = _escaper(_QUERY_UNSAFE)
escape_url_value = _escaper(_URL_UNSAFE)
