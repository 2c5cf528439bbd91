"""Where a Core Rule Set lives on disk: a release directory or Debian's split layout.

A release directory (a download of coreruleset) holds ``crs-setup.conf`` (or only the
``crs-setup.conf.example`` it ships) and ``rules/*.conf`` with the ``.data`` files beside
them. Debian's ``modsecurity-crs`` package puts the rules in
``/usr/share/modsecurity-crs/rules`` and the setup with the two exclusion files in
``/etc/modsecurity/crs``. ``find_crs`` recognises both; ``"auto"`` means Debian's.
Nothing here reads a rule; it only finds the files, in the order ModSecurity loads them.
"""

from __future__ import annotations

import glob
import os
import re
from typing import NamedTuple, Optional, Tuple

DEBIAN_ROOT = "/usr/share/modsecurity-crs"
DEBIAN_ETC = "/etc/modsecurity/crs"
BEFORE_NAME = "REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf"
AFTER_NAME = "RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf"
_VERSION = re.compile(rb"tx\.crs_setup_version\s*=\s*'?(\d)")


class CRSLayout(NamedTuple):
    """The files of one CRS, in load order: ``setup`` (crs-setup.conf), ``before`` (the
    REQUEST-900 exclusions, when present outside ``rules``), ``rules`` (``rules/*.conf``
    sorted by name, as ModSecurity's ``Include rules/*.conf`` does), ``after`` (RESPONSE-999
    outside ``rules``); ``version`` is the CRS major version (3 or 4) read from the setup."""

    root: str
    setup: str
    before: Tuple[str, ...]
    rules: Tuple[str, ...]
    after: Tuple[str, ...]
    version: int


class CRSNotFound(ValueError):
    """``path`` holds no CRS; the message says what was looked for."""


def find_crs(spec: str, debian_root: str = DEBIAN_ROOT, debian_etc: str = DEBIAN_ETC
             ) -> Optional[CRSLayout]:
    """The CRS named by ``spec``: ``"auto"`` is Debian's (None when it is not installed), a
    directory a release or Debian's layout. Raises ``CRSNotFound`` for a directory that is
    neither (a named directory must exist: a typo must not turn the firewall off)."""
    if spec == "auto":
        try:
            return _debian(debian_root, debian_etc)
        except CRSNotFound:
            return None
    path = os.path.abspath(spec)
    if not os.path.isdir(path):
        raise CRSNotFound("%s: no such directory" % path)
    if not os.path.isdir(os.path.join(path, "rules")):
        raise CRSNotFound("%s: no rules/ directory (expected a CRS release directory with "
                          "crs-setup.conf(.example) and rules/, or %s)" % (path, debian_root))
    setup = _first(os.path.join(path, "crs-setup.conf"),
                   os.path.join(path, "crs-setup.conf.example"))
    if setup is None:
        if os.path.realpath(path) == os.path.realpath(debian_root):
            return _debian(debian_root, debian_etc)
        raise CRSNotFound("%s: no crs-setup.conf or crs-setup.conf.example" % path)
    return CRSLayout(path, setup, (), _rules(path), (), _version(setup))


def _debian(root: str, etc: str) -> CRSLayout:
    setup = os.path.join(etc, "crs-setup.conf")
    if not os.path.isdir(os.path.join(root, "rules")) or not os.path.isfile(setup):
        raise CRSNotFound("no Debian CRS (%s/rules and %s); install it with "
                          "apt-get install modsecurity-crs" % (root, setup))
    before = tuple(p for p in (os.path.join(etc, BEFORE_NAME),) if os.path.isfile(p))
    after = tuple(p for p in (os.path.join(etc, AFTER_NAME),) if os.path.isfile(p))
    return CRSLayout(root, setup, before, _rules(root), after, _version(setup))


def _first(*paths: str) -> Optional[str]:
    for path in paths:
        if os.path.isfile(path):
            return path
    return None


def _rules(root: str) -> Tuple[str, ...]:
    return tuple(sorted(glob.glob(os.path.join(root, "rules", "*.conf"))))


def _version(setup: str) -> int:
    """3 or 4 from ``tx.crs_setup_version`` in the setup file (4 when it says nothing)."""
    try:
        with open(setup, "rb") as handle:
            found = _VERSION.search(handle.read())
    except OSError:
        return 4
    return int(found.group(1)) if found and found.group(1) in (b"3", b"4") else 4
