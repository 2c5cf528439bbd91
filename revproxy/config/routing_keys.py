"""Parsers of the per-route matching, splitting, rewriting, answer, header and error-page keys
(``docs/routing.md``). Templates are compiled here once so a bad one fails at load with the
file, the route and the key; ``revproxy.routing.plan`` compiles them again for the runtime.
Health probes (``revproxy.config.pools``) check their method and body regex with the route's
``method`` and ``compile_regex``.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Tuple

from revproxy.config.routemodel import HeaderEdits, Respond, ValueMatch
from revproxy.config.reader import Table, table_key
from revproxy.config.values import parse_token
from revproxy.routing import templates

REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_PATH_LITERAL_BAD = re.compile(r"[^\x21-\x7e]|[?#\\]")
_QUERY_LITERAL_BAD = re.compile(r"[^\x21-\x7e]|[#\\]")
_STATUS_KEY = re.compile(r"^(?:[45][0-9][0-9]|[45]xx)\Z")


def _literal_check(bad, what):
    def check(text: str) -> None:
        found = bad.search(text)
        if found is not None:
            raise ValueError("expected %s; %r is not allowed (percent-encode it)"
                             % (what, found.group(0)))
    return check


def path_template(value: Any) -> templates.Template:
    return templates.compile_template(
        value, escape=templates.escape_path_value,
        literal_check=_literal_check(_PATH_LITERAL_BAD, "a path (visible ASCII, no ? or #)"))


def query_template(value: Any) -> templates.Template:
    return templates.compile_template(
        value, escape=templates.escape_query_value,
        literal_check=_literal_check(_QUERY_LITERAL_BAD, "a query (visible ASCII, no #)"))


def url_template(value: Any) -> templates.Template:
    return templates.compile_template(value, escape=templates.escape_url_value)


def request_value_template(value: Any) -> templates.Template:
    return templates.compile_template(value)


def response_value_template(value: Any) -> templates.Template:
    return templates.compile_template(value, allowed=templates.NAMES)


def compile_regex(value: Any) -> str:
    """A regular expression that compiles (Python ``re`` syntax); returned as text."""
    if not isinstance(value, str):
        raise ValueError("expected a regular expression (a string)")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError("expected a valid regular expression: %s" % exc) from None
    return value


def path_prefix(value: Any) -> str:
    """A path prefix: starts with "/", no query, fragment or whitespace."""
    ok = isinstance(value, str) and value.startswith("/")
    if not ok or any(char in value for char in "?# \t\r\n"):
        raise ValueError('expected a path starting with "/" (no query, fragment or spaces)')
    return value


def method(value: Any) -> str:
    """An HTTP method token, upper-cased."""
    return parse_token(value).upper()


def prefix(value: Any) -> str:
    """A path prefix for strip_prefix / add_prefix: starts with "/", visible ASCII, no ?#."""
    if not isinstance(value, str) or not value.startswith("/") or _PATH_LITERAL_BAD.search(value):
        raise ValueError('expected a path starting with "/" (visible ASCII, no ?, # or spaces)')
    return value


def forward_query(value: Any) -> str:
    if value in ("keep", "drop"):
        return value
    query_template(value)
    return value


def split_sticky(value: Any) -> str:
    if value in ("", "ip"):
        return value
    if isinstance(value, str) and value.startswith("cookie:"):
        parse_token(value[len("cookie:"):])
        return value
    raise ValueError('expected "ip" or "cookie:NAME" (a cookie name, an HTTP token)')


# -- tables read by hand -----------------------------------------------------------------------
def parse_value_matches(table: Table, key: str) -> Tuple[ValueMatch, ...]:
    """``query = { name = "value" | true | { regex = "..." } }`` (and ``cookies``)."""
    expected = ('expected an inline table { name = "exact value" }, { name = true } (present) '
                'or { name = { regex = "..." } }')
    raw = table.data.get(key, {})
    if not isinstance(raw, dict):
        raise table.error(key, raw, expected)
    result = []
    for name, condition in raw.items():
        where = "%s.%s" % (key, table_key(name))
        if condition is True:
            result.append(ValueMatch(name=name))
        elif isinstance(condition, str):
            result.append(ValueMatch(name=name, value=condition))
        elif isinstance(condition, dict) and list(condition) == ["regex"]:
            regex = condition["regex"]
            try:
                re.compile(regex)
            except (re.error, TypeError) as exc:
                raise table.error(where, regex, "expected a valid regular expression: %s"
                                  % exc) from None
            result.append(ValueMatch(name=name, regex=regex))
        else:
            raise table.error(where, condition, expected)
    return tuple(result)


def parse_split(table: Table) -> Tuple[Tuple[str, int], ...]:
    expected = 'expected an array of inline tables { pool = "NAME", weight = N } (N 0-1000)'
    raw = table.data.get("split", [])
    if not isinstance(raw, list):
        raise table.error("split", raw, expected)
    arms: List[Tuple[str, int]] = []
    for index, item in enumerate(raw):
        where = "split #%d" % (index + 1)
        if not isinstance(item, dict) or set(item) != {"pool", "weight"}:
            raise table.error(where, item, expected)
        pool, weight = item["pool"], item["weight"]
        if not isinstance(pool, str) or any(pool == seen for seen, _ in arms):
            raise table.error(where, item, expected + "; each pool once")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 1000:
            raise table.error(where, item, expected)
        arms.append((pool, weight))
    if raw and (len(arms) < 2 or sum(weight for _, weight in arms) == 0):
        raise table.error("split", raw, "expected at least two pools and a weight above 0")
    return tuple(arms)


def parse_rewrite(table: Table) -> Optional[Tuple[str, str]]:
    if "rewrite" not in table.data:
        return None
    raw = table.data["rewrite"]
    expected = 'expected an inline table { regex = "^/old/(.*)$", replace = "/new/$1" }'
    if not isinstance(raw, dict) or set(raw) != {"regex", "replace"}:
        raise table.error("rewrite", raw, expected)
    try:
        regex = re.compile(raw["regex"])
    except (re.error, TypeError) as exc:
        raise table.error("rewrite.regex", raw["regex"], "expected a valid regular expression: %s"
                          % exc) from None
    try:
        template = path_template(raw["replace"])
    except ValueError as exc:
        raise table.error("rewrite.replace", raw["replace"], str(exc)) from None
    _check_captures(table, "rewrite.replace", template, regex.groups)
    return raw["regex"], raw["replace"]


def _check_captures(table: Table, key: str, template, groups: int) -> None:
    for part in template.parts:
        if isinstance(part, int) and part > groups:
            raise table.error(key, template.text, "uses capture $%d but the regex has %d group%s"
                              % (part, groups, "" if groups == 1 else "s"))


def parse_redirect(table: Table) -> Optional[Tuple[int, str]]:
    if "redirect" not in table.data:
        return None
    raw = table.data["redirect"]
    expected = 'expected an inline table { status = 301, to = "https://{host}{uri}" }'
    if not isinstance(raw, dict) or "to" not in raw or not set(raw) <= {"status", "to"}:
        raise table.error("redirect", raw, expected)
    status = raw.get("status", 302)
    if status not in REDIRECT_STATUSES or isinstance(status, bool):
        raise table.error("redirect.status", status, "expected one of: 301, 302, 303, 307, 308")
    try:
        url_template(raw["to"])
    except ValueError as exc:
        raise table.error("redirect.to", raw["to"], str(exc)) from None
    return status, raw["to"]


def parse_respond(table: Table) -> Optional[Respond]:
    if "respond" not in table.data:
        return None
    raw = table.data["respond"]
    expected = 'expected an inline table { status = 200, body = "ok", content_type = "..." }'
    if not isinstance(raw, dict) or not set(raw) <= {"status", "body", "content_type"}:
        raise table.error("respond", raw, expected)
    status = raw.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise table.error("respond.status", status, "expected a status from 200 to 599")
    body = raw.get("body", "")
    if not isinstance(body, str):
        raise table.error("respond.body", body, "expected a string")
    content_type = raw.get("content_type", Respond.content_type)
    if not isinstance(content_type, str) or re.search(r"[^\x20-\x7e]", content_type):
        raise table.error("respond.content_type", content_type, "expected a media type (ASCII)")
    return Respond(status=status, body=body, content_type=content_type)


def parse_header_edits(table: Table, key: str) -> Optional[HeaderEdits]:
    if key not in table.data:
        return None
    raw = table.data[key]
    expected = ('expected an inline table { set = { "name" = "value" }, add = { ... }, '
                'remove = ["name"] }')
    if not isinstance(raw, dict) or not set(raw) <= {"set", "add", "remove"}:
        raise table.error(key, raw, expected)
    compile_value = response_value_template if key == "response_headers" else \
        request_value_template
    result: Dict[str, Any] = {}
    for op in ("set", "add"):
        fields = raw.get(op, {})
        if not isinstance(fields, dict):
            raise table.error("%s.%s" % (key, op), fields, expected)
        pairs = []
        for name, value in fields.items():
            where = "%s.%s.%s" % (key, op, table_key(name))
            try:
                lowered = parse_token(name).lower()
                compile_value(value)
            except ValueError as exc:
                raise table.error(where, value, str(exc)) from None
            pairs.append((lowered, value))
        result[op] = tuple(pairs)
    remove = raw.get("remove", [])
    if not isinstance(remove, list):
        raise table.error(key + ".remove", remove, "expected an array of header names")
    names = []
    for index, name in enumerate(remove):
        try:
            names.append(parse_token(name).lower())
        except ValueError as exc:
            raise table.error("%s.remove #%d" % (key, index + 1), name, str(exc)) from None
    result["remove"] = tuple(names)
    return HeaderEdits(**result)


def parse_error_pages(table: Table, key: str = "error_pages"
                      ) -> Tuple[Tuple[str, Tuple[str, ...]], ...]:
    """``{ 404 = "404.html", "5xx" = ["5xx.html", "5xx.json"] }``: paths relative to the
    config file's directory; a ``.json`` file is the JSON variant, anything else HTML."""
    raw = table.data.get(key, {})
    expected = ('expected an inline table { 404 = "404.html", "5xx" = ["5xx.html", "5xx.json"] }'
                ' (a status 400-599 or 4xx/5xx -> a file or a .html and a .json file)')
    if not isinstance(raw, dict):
        raise table.error(key, raw, expected)
    base = os.path.dirname(os.path.abspath(table.source)) if os.path.isfile(table.source) \
        else os.getcwd()
    pages = []
    for status, files in raw.items():
        where = "%s.%s" % (key, table_key(status))
        if not _STATUS_KEY.match(status):
            raise table.error(where, files, "expected a status 400-599, 4xx or 5xx as the key")
        if isinstance(files, str):
            files = [files]
        if not isinstance(files, list) or not 1 <= len(files) <= 2 or \
                not all(isinstance(f, str) and f for f in files):
            raise table.error(where, files, expected)
        kinds = [f.lower().endswith(".json") for f in files]
        if len(set(kinds)) != len(kinds):
            raise table.error(where, files, "expected at most one .json and one HTML file")
        pages.append((status, tuple(os.path.join(base, f) for f in files)))
    return tuple(pages)
