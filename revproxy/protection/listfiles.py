"""IP list files: one address or CIDR block per line, ``#`` starts a comment.

A file is read whole at start-up and on every reload; a line that does not parse refuses the
start-up or the reload with a ``ConfigError`` naming the file, the line and the value. A file
whose bytes did not change since the last read is not parsed again (``ListFileCache``): a
reload with a 100,000-line file that did not change costs one read and one hash.
"""

from __future__ import annotations

import hashlib

from revproxy.config.errors import NO_VALUE, ConfigError
from revproxy.protection.cidr import AddressMatcher, parse_entry


def parse_list_text(text: str, source: str) -> AddressMatcher:
    """The entries of a list file's ``text``; ``source`` (the path) names it in errors."""
    ranges = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            ranges.append(parse_entry(entry))
        except ValueError as e:
            raise ConfigError(source, "line %d" % number, entry, str(e)) from None
    return AddressMatcher(ranges)


class ListFileCache:
    """Parsed list files by path, kept while their content stays the same.

    Content, not modification time, decides: a file rewritten twice within the file system's
    timestamp granularity must still be read anew."""

    def __init__(self):
        self._parsed = {}  # path -> (sha256 digest, AddressMatcher)

    def load(self, path: str, where: str, config_source: str) -> AddressMatcher:
        """The matcher of the file at ``path``; ``where`` (``[[ip_lists]] #1 (name) files #2``)
        and ``config_source`` name the config key when the file cannot be read."""
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except OSError as e:
            raise ConfigError(config_source, where, path,
                              "cannot read it: %s" % (e.strerror or e)) from None
        digest = hashlib.sha256(raw).digest()
        known = self._parsed.get(path)
        if known is not None and known[0] == digest:
            return known[1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(path, "byte %d" % e.start, NO_VALUE,
                              "expected UTF-8 text: one address or CIDR block per line") from None
        matcher = parse_list_text(text, path)
        self._parsed[path] = (digest, matcher)
        return matcher

    def keep_only(self, paths) -> None:
        """Forget the files no list names any more."""
        for path in [p for p in self._parsed if p not in paths]:
            del self._parsed[path]
