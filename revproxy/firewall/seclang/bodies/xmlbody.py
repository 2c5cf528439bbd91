"""XML request bodies -> the XML:/... variable, parsed safely with expat.

Safety: any entity declaration (``<!ENTITY``, the billion-laughs and XXE vehicle) is refused,
parameter entities and external DTDs are never read (no file or network access), nesting
deeper than ``max_depth`` (libxml2's default bound, 256) is refused, bodies over
``max_bytes`` are not parsed; each is REQBODY_ERROR with a message, as is malformed XML.

The document keeps the text nodes (Coraza: character data between tags, trimmed, empty ones
dropped), the attributes and the element tree; ``XmlDocument.xpath(expr)`` answers the XPath
subset in ``compile_xpath``'s docstring (the CRS uses ``/*`` and ``//@*`` only).
"""

from __future__ import annotations

import functools
import re
from typing import Dict, List, NamedTuple, Optional, Tuple
from xml.parsers import expat

from revproxy.firewall.seclang.api import BodyResult

_NAME = r"[^\s/@\[\]()=|*:]+(?::[^\s/@\[\]()=|*:]+)?"
_STEP = re.compile(r"^(?:\*|%s)$" % _NAME)
_ALL_TEXT = ("/*", "//*", "//text()", "/", "//node()")


class XPathQuery(NamedTuple):
    """A compiled query: ``steps`` (element names or ``*``, root first), ``anywhere``
    (the path may start at any depth: ``//a/b``), ``attribute`` (None: element content;
    ``*`` or a name: attribute values), ``all_text`` (the text nodes of the document)."""

    steps: Tuple[str, ...]
    anywhere: bool
    attribute: Optional[str]
    all_text: bool


@functools.lru_cache(maxsize=512)
def compile_xpath(expr: str) -> XPathQuery:
    """Compile the supported XPath subset, raising ValueError for anything else (call it at
    rule load so a rule using an unsupported expression fails there):

    - ``/*``, ``//*``, ``//text()``, ``//node()``, ``/``: every text node (Coraza's XML:/*);
    - ``//@*`` / ``//@name``: every attribute value / those of attributes named ``name``;
    - ``/a/b/c``, ``//b/c`` (``*`` allowed as a step), optionally ending in ``/text()``: the
      text content of each matching element (its descendants' text joined, as libxml2's
      node content), or ending in ``/@*`` or ``/@name``: their attribute values."""
    if expr in _ALL_TEXT:
        return XPathQuery((), True, None, True)
    anywhere = expr.startswith("//")
    body = expr[2:] if anywhere else expr[1:] if expr.startswith("/") else None
    if not body:
        raise ValueError("unsupported XPath expression %r" % expr)
    steps = body.split("/")
    attribute = None
    if steps[-1].startswith("@"):
        attribute = steps.pop()[1:]
        if attribute != "*" and not _STEP.match(attribute):
            raise ValueError("unsupported XPath attribute step in %r" % expr)
    elif steps[-1] == "text()":
        steps.pop()
    if not steps:
        if anywhere and attribute is not None:
            return XPathQuery((), True, attribute, False)
        raise ValueError("unsupported XPath expression %r" % expr)
    for step in steps:
        if not _STEP.match(step):
            raise ValueError("unsupported XPath step %r in %r" % (step, expr))
    return XPathQuery(tuple(steps), anywhere, attribute, False)


class XmlDocument:
    """What was read of one XML body. ``xpath(expr) -> List[bytes]`` (UTF-8) in document
    order; raises ValueError for an expression ``compile_xpath`` refuses. Element content
    returned by one call is bounded by ``max_bytes`` in total."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.chunks: List[str] = []  # raw character data, in order
        self.texts: List[bytes] = []  # trimmed, non-empty text nodes
        # per element: (name, parent index or -1, depth, first chunk, end chunk)
        self.elements: List[List] = []
        self.attributes: List[Tuple[int, str, bytes]] = []  # (element, name, value)

    def xpath(self, expr: str) -> List[bytes]:
        query = compile_xpath(expr)
        if query.all_text:
            return list(self.texts)
        if not query.steps:
            return [v for _, name, v in self.attributes
                    if query.attribute == "*" or name == query.attribute]
        matched = [i for i in range(len(self.elements)) if self._matches(i, query)]
        if query.attribute is not None:
            wanted = set(matched)
            return [v for e, name, v in self.attributes
                    if e in wanted and (query.attribute == "*" or name == query.attribute)]
        out: List[bytes] = []
        budget = self.max_bytes
        for index in matched:
            _, _, _, first, end = self.elements[index]
            value = "".join(self.chunks[first:end]).encode("utf-8", "surrogatepass")
            budget -= len(value)
            if budget < 0:
                break
            out.append(value)
        return out

    def _matches(self, index: int, query: XPathQuery) -> bool:
        steps = query.steps
        if not query.anywhere and self.elements[index][2] != len(steps):
            return False
        for step in reversed(steps):
            if index < 0:
                return False
            name, parent = self.elements[index][0], self.elements[index][1]
            if step != "*" and step != name:
                return False
            index = parent
        return True


class _Refused(Exception):
    pass


class _Builder:
    def __init__(self, doc: XmlDocument, max_depth: int) -> None:
        self.doc = doc
        self.max_depth = max_depth
        self.open: List[int] = []
        self.pending: List[str] = []

    def flush(self) -> None:
        if self.pending:
            text = "".join(self.pending)
            self.pending = []
            self.doc.chunks.append(text)
            stripped = text.strip()
            if stripped:
                self.doc.texts.append(stripped.encode("utf-8", "surrogatepass"))

    def start(self, name: str, attrs: List[str]) -> None:
        self.flush()
        if len(self.open) >= self.max_depth:
            raise _Refused("XML: nesting deeper than %d" % self.max_depth)
        index = len(self.doc.elements)
        parent = self.open[-1] if self.open else -1
        self.doc.elements.append([name, parent, len(self.open) + 1, len(self.doc.chunks), -1])
        for i in range(0, len(attrs), 2):
            self.doc.attributes.append(
                (index, attrs[i], attrs[i + 1].encode("utf-8", "surrogatepass")))
        self.open.append(index)

    def end(self, name: str) -> None:
        self.flush()
        self.doc.elements[self.open.pop()][4] = len(self.doc.chunks)

    def text(self, data: str) -> None:
        if self.open:
            self.pending.append(data)

    def entity(self, *args: object) -> None:
        raise _Refused("XML: entity declarations are not allowed")


def parse_xml(data: bytes, *, max_bytes: int, max_depth: int = 256) -> BodyResult:
    """Parse an XML body into ``xml`` (an ``XmlDocument``, also kept when the parse fails
    half-way, with what was read). ``flags``: REQBODY_ERROR / REQBODY_PROCESSOR_ERROR 0 or
    1 with ``error``. Never raises on bytes input."""
    doc = XmlDocument(max_bytes)
    error = ""
    if len(data) > max_bytes:
        error = "XML: body of %d bytes over the %d-byte limit" % (len(data), max_bytes)
    else:
        builder = _Builder(doc, max_depth)
        parser = expat.ParserCreate()
        parser.buffer_text = True
        parser.ordered_attributes = True
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartElementHandler = builder.start
        parser.EndElementHandler = builder.end
        parser.CharacterDataHandler = builder.text
        parser.EntityDeclHandler = builder.entity
        try:
            parser.Parse(data, True)
        except _Refused as exc:
            error = str(exc)
        except expat.ExpatError as exc:
            error = "XML parsing error: %s" % exc
        except (ValueError, LookupError) as exc:  # e.g. an unknown declared encoding
            error = "XML parsing error: %s" % exc
        builder.flush()
        for index in builder.open:  # elements left open by a failed parse
            doc.elements[index][4] = len(doc.chunks)
    flags: Dict[str, int] = {"REQBODY_ERROR": int(bool(error))}
    flags["REQBODY_PROCESSOR_ERROR"] = flags["REQBODY_ERROR"]
    return BodyResult(flags=flags, error=error.encode("utf-8", "replace"), xml=doc,
                      raw_length=len(data))
