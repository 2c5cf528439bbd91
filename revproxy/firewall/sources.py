"""The SecLang text the engine loads for one ``[firewall]``, in ModSecurity's order.

1. ``<revproxy base>``: what ModSecurity's ``modsecurity.conf-recommended`` sets and the CRS
   expects from its host: the rule engine, request body access and limits, the JSON and XML
   body processors (rules 200000-200001), the request-body error rules (200002-200003),
   response body access and types;
2. the CRS's ``crs-setup.conf`` (or ``.example``);
3. ``<[firewall] settings>``: paranoia level and anomaly thresholds (rule 200100), after the
   setup so the config wins, before the rules that read them;
4. ``exclusions_before`` (and Debian's REQUEST-900 file), the CRS ``rules/*.conf``,
   Debian's RESPONSE-999 and ``exclusions_after``, then ``rules``.

Files are read here (the engine gets ``(name, text)`` pairs); a file that cannot be read or
is not UTF-8 is a ``ConfigError`` naming the file.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from revproxy.config.errors import NO_VALUE, ConfigError
from revproxy.firewall.crs import CRSLayout

BASE_NAME = "<revproxy base>"
SETTINGS_NAME = "<[firewall] settings>"
BASE_RULE_IDS = (200000, 200001, 200002, 200003, 200100)

_BASE = """\
SecRuleEngine {engine}
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "@rx ^(?:application(?:/soap\\+|/)|text/)xml" \\
    "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" \\
    "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRequestBodyLimit {body_limit}
SecRequestBodyNoFilesLimit {no_files_limit}
SecRequestBodyLimitAction {limit_action}
SecRule REQBODY_ERROR "!@eq 0" \\
    "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',\\
logdata:'%{{reqbody_error_msg}}',severity:2"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" \\
    "id:200003,phase:2,t:none,log,deny,status:400,\\
msg:'Multipart request body failed strict validation'"
SecResponseBodyAccess {response_access}
SecResponseBodyMimeType {response_types}
SecResponseBodyLimit {response_limit}
SecResponseBodyLimitAction ProcessPartial
"""

_SETTINGS = """\
SecAction "id:200100,phase:1,pass,nolog,t:none,\\
{paranoia}\\
setvar:tx.inbound_anomaly_score_threshold={inbound},\\
setvar:tx.outbound_anomaly_score_threshold={outbound}"
"""


def base_text(settings) -> str:
    """The ``<revproxy base>`` directives for ``settings`` (a ``FirewallSettings``). The
    engine always runs On: detect mode is decided per request by the hook, which then still
    knows what would have been blocked."""
    return _BASE.format(
        engine="On" if settings.enabled else "Off",
        body_limit=settings.request_body_limit,
        no_files_limit=settings.request_body_no_files_limit,
        limit_action="Reject" if settings.request_body_limit_action == "reject"
        else "ProcessPartial",
        response_access="On" if settings.response_body_access else "Off",
        response_types=" ".join(settings.response_body_types),
        response_limit=settings.response_body_limit,
    )


def settings_text(settings, crs_version: int) -> str:
    """Rule 200100: the paranoia level (``tx.blocking_paranoia_level`` for CRS 4,
    ``tx.paranoia_level`` for CRS 3) and the inbound / outbound anomaly thresholds."""
    level = settings.paranoia_level
    if crs_version >= 4:
        paranoia = "setvar:tx.blocking_paranoia_level=%d,\\\n" % level
    else:
        paranoia = "setvar:tx.paranoia_level=%d,\\\n" % level
    return _SETTINGS.format(paranoia=paranoia, inbound=settings.inbound_threshold,
                            outbound=settings.outbound_threshold)


def read_rule_file(path: str, source: str, key: str) -> Tuple[str, str]:
    """``(path, text)``; ConfigError naming ``source``'s ``key`` and the file otherwise."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as e:
        raise ConfigError(source, key, NO_VALUE, "cannot read the rule file %s: %s"
                          % (path, e.strerror or e)) from None
    try:
        return path, raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(source, key, NO_VALUE, "rule file %s is not UTF-8 text (byte %d)"
                          % (path, e.start)) from None


def rule_sources(settings, layout: Optional[CRSLayout], source: str) -> List[Tuple[str, str]]:
    """Every ``(name, text)`` the engine loads for ``settings``, in order (see the module
    docstring). ``layout`` is the CRS found for ``settings.crs`` (None: no CRS)."""
    out = [(BASE_NAME, base_text(settings))]
    if layout is not None:
        out.append(read_rule_file(layout.setup, source, "[firewall] crs"))
    out.append((SETTINGS_NAME, settings_text(settings, layout.version if layout else 4)))
    out += _read_all(settings.exclusions_before, source, "[firewall] exclusions_before")
    if layout is not None:
        out += _read_all(layout.before + layout.rules + layout.after, source, "[firewall] crs")
    out += _read_all(settings.exclusions_after, source, "[firewall] exclusions_after")
    out += _read_all(settings.rules, source, "[firewall] rules")
    return out


def _read_all(paths: Sequence[str], source: str, key: str) -> List[Tuple[str, str]]:
    return [read_rule_file(path, source, key) for path in paths]


def no_crs_error(source: str, spec: str, why: str) -> ConfigError:
    return ConfigError(source, "[firewall] crs", spec if spec else NO_VALUE, why)
