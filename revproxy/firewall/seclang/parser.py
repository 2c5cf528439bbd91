"""SecLang text -> directives (no semantics here; ``engine`` compiles them).

The syntax is Apache's configuration syntax as ModSecurity reads it:

- one directive per logical line; a backslash as the last character of a physical line
  continues the directive on the next line (the backslash and the line break are removed;
  leading whitespace of the next line is kept, as Apache does);
- ``#`` starts a comment when it is the first non-blank character of a logical line;
- arguments are separated by whitespace; an argument may be double-quoted, inside which
  ``\\"`` stands for ``"`` and every other backslash is kept as it is (so regular expressions
  reach the operator unchanged); single quotes are not special at this level.

Then the pieces of a rule: ``split_actions`` (comma-separated, values optionally in single
quotes that may hold commas and colons), ``split_variables`` (``|``-separated, a ``/regex/``
key may hold ``|``) and ``split_operator``. Every error is a ``SecLangError(file, line, msg)``.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

from .api import SecLangError


class Directive(NamedTuple):
    """One directive: ``name`` as written, ``args`` unquoted, and where it came from."""

    name: str
    args: Tuple[str, ...]
    file: str
    line: int


def parse(text: str, file: str) -> List[Directive]:
    """All directives of ``text`` (the contents of ``file``), in order."""
    directives = []
    for line_no, logical in _logical_lines(text, file):
        stripped = logical.strip()
        if not stripped or stripped.startswith("#"):
            continue
        words = _split_words(stripped, file, line_no)
        directives.append(Directive(words[0], tuple(words[1:]), file, line_no))
    return directives


def _logical_lines(text: str, file: str):
    """(first physical line number, joined text) for each logical line."""
    pending: List[str] = []
    start = 0
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not pending:
            start = number
        if line.endswith("\\") and not _is_comment(pending, line):
            pending.append(line[:-1])
            continue
        pending.append(line)
        yield start, "".join(pending)
        pending = []
    if pending:
        yield start, "".join(pending)


def _is_comment(pending: List[str], line: str) -> bool:
    """A comment line never continues (Apache: a ``#`` line ending in ``\\`` is still one
    comment line)."""
    return not pending and line.lstrip().startswith("#")


def _split_words(text: str, file: str, line: int) -> List[str]:
    words = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t":
            i += 1
            continue
        if c == '"':
            i, word = _quoted(text, i + 1, file, line)
        else:
            j = i
            while j < n and text[j] not in " \t":
                j += 1
            word = text[i:j]
            i = j
        words.append(word)
    return words


def _quoted(text: str, i: int, file: str, line: int) -> Tuple[int, str]:
    out = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] == '"':
            out.append('"')
            i += 2
            continue
        if c == '"':
            return i + 1, "".join(out)
        out.append(c)
        i += 1
    raise SecLangError(file, line, "unterminated double quote")


def split_actions(text: str, file: str, line: int) -> List[Tuple[str, Optional[str]]]:
    """``"id:1,msg:'a, b: c',t:none"`` -> [("id", "1"), ("msg", "a, b: c"), ("t", "none")].

    Names keep their case (the engine lower-cases them); a value in single quotes may hold
    commas, colons and ``\\'``; surrounding blanks are trimmed. An action with no ``:`` has
    the value None."""
    actions: List[Tuple[str, Optional[str]]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n:
            break
        j = i
        while j < n and text[j] not in ":,":
            j += 1
        name = text[i:j].strip()
        if not name:
            raise SecLangError(file, line, "empty action name in %r" % text)
        if j >= n or text[j] == ",":
            actions.append((name, None))
            i = j + 1
            continue
        j += 1
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == "'":
            j, value = _single_quoted(text, j + 1, file, line)
            while j < n and text[j] not in ",":
                if text[j] not in " \t\r\n":
                    raise SecLangError(file, line, "text after the quoted value of %s" % name)
                j += 1
        else:
            k = text.find(",", j)
            k = n if k < 0 else k
            value = text[j:k].strip()
            j = k
        actions.append((name, value))
        i = j + 1
    return actions


def _single_quoted(text: str, i: int, file: str, line: int) -> Tuple[int, str]:
    out = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] == "'":
            out.append("'")
            i += 2
            continue
        if c == "'":
            return i + 1, "".join(out)
        out.append(c)
        i += 1
    raise SecLangError(file, line, "unterminated single quote in actions")


class VariableSpec(NamedTuple):
    """One target as written: ``ARGS:/^id_/`` -> ("ARGS", "^id_", True, False, False)."""

    name: str          # upper-case collection name
    key: Optional[str]  # None: the whole collection
    regex: bool        # key is a regular expression (written /.../)
    exclude: bool      # written !NAME:key
    count: bool        # written &NAME[:key]


def split_variables(text: str, file: str, line: int) -> List[VariableSpec]:
    """``"ARGS|!ARGS:z|&TX:x|ARGS:/a|b/"`` -> one VariableSpec each."""
    specs = []
    i, n = 0, len(text)
    while i <= n:
        j = i
        while j < n and text[j] not in "|:":
            j += 1
        head = text[i:j].strip()
        key = None
        regex = False
        if j < n and text[j] == ":":
            j += 1
            if j < n and text[j] == "/" and not text.startswith("XML:", i) and \
                    not head.lstrip("!&").upper() == "XML":
                end = _regex_end(text, j + 1)
                if end is not None:
                    key, regex, j = text[j + 1:end], True, end + 1
            elif j < n and text[j] == "'":
                end = text.find("'", j + 1)
                if end < 0:
                    raise SecLangError(file, line, "unterminated quote in variable %r" % text)
                key, j = text[j + 1:end], end + 1
            if key is None:
                k = j
                while k < n and text[k] != "|":
                    k += 1
                key, j = text[j:k].strip(), k
        specs.append(_spec(head, key, regex, text, file, line))
        if j < n and text[j] != "|":
            raise SecLangError(file, line, "bad variable list %r" % text)
        i = j + 1
        if j >= n:
            break
    return specs


def _regex_end(text: str, i: int) -> Optional[int]:
    """Index of the ``/`` closing a regex key that starts at ``i``: the first unescaped
    ``/`` followed by ``|`` or the end; None if there is none."""
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "/" and (i + 1 == n or text[i + 1] == "|"):
            return i
        i += 1
    return None


def _spec(head: str, key: Optional[str], regex: bool, text: str, file: str,
          line: int) -> VariableSpec:
    exclude = head.startswith("!")
    count = head.startswith("&")
    name = head[1:] if exclude or count else head
    name = name.strip()
    if not name or not all(c.isalnum() or c == "_" for c in name):
        raise SecLangError(file, line, "bad variable %r in %r" % (head, text))
    if key == "":
        key = None
    return VariableSpec(name.upper(), key, regex, exclude, count)


def split_operator(text: str) -> Tuple[bool, str, str]:
    """``"!@rx a b"`` -> (True, "rx", "a b"); ``"abc"`` -> (False, "rx", "abc") (the
    default operator is @rx); the name is as written (the engine lower-cases it)."""
    negated = False
    s = text.lstrip(" \t")
    if s.startswith("!"):
        negated = True
        s = s[1:].lstrip(" \t")
    if not s.startswith("@"):
        return negated, "rx", s
    j = 1
    while j < len(s) and s[j] not in " \t":
        j += 1
    return negated, s[1:j], s[j:].lstrip(" \t")
