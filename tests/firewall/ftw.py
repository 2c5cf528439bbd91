"""The CRS regression runner: go-ftw's YAML tests against our engine, judged by logged ids.

Each test stage is built into raw request bytes the way go-ftw sends them (request line from
``method``/``uri``/``version``, ``headers`` in order, ``data``; with ``autocomplete_headers``
(the default) ``Content-Length`` and ``Content-Type: application/x-www-form-urlencoded`` are
added for data and ``Connection: close``, each when absent;
``encoded_request`` is sent verbatim), parsed by the proxy's own strict HTTP/1.1 parser
(``revproxy.http1``), turned into a ``RequestView`` + body and run through phases 1-5 of CRS
loaded as a user would (the engine settings of ModSecurity's recommended config, then
``crs-setup.conf.example``, then the test environment's settings, then ``rules/*.conf``
sorted), in DetectionOnly like the CRS test setup, so every rule gets its say. Responses come
from a stand-in of the test backend (albedo): ``/reflect`` answers with the JSON ``body``
of the request, anything else with a small HTML page.

A stage passes when every ``expect_ids`` id was logged and no ``no_expect_ids`` id was. A
request the strict parser refuses (400 and friends) is "refused by the strict parser": it
passes only when the test expects a 400 status or only 920xxx (protocol) ids.

Run ``python -m tests.firewall.ftw [--all] [--rule ID] [-v]`` for a summary; the pytest test
is ``tests/firewall/test_crs_regression.py``.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import sys
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from revproxy.firewall.seclang.api import RequestView
from revproxy.http1 import END, NEED_DATA, CLOSED, ProtocolError, RequestHead, RequestParser

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def crs_dir() -> Optional[str]:
    """The CRS v4.28.0 release dir (``$REVPROXY_CRS_DIR`` or ../shared), or None."""
    for path in (os.environ.get("REVPROXY_CRS_DIR"),
                 os.path.join(ROOT, "..", "shared", "crs-v4.28.0"),
                 "/work/shared/crs-v4.28.0"):
        if path and os.path.isdir(os.path.join(path, "rules")) and \
                os.path.isdir(os.path.join(path, "tests", "regression", "tests")):
            return os.path.abspath(path)
    return None


# ModSecurity's modsecurity.conf-recommended (what the CRS test containers run), in
# DetectionOnly as the CRS regression README asks.
ENGINE_CONF = r"""
SecRuleEngine DetectionOnly
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\+|/)|text/)xml" \
     "id:'200000',phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" \
     "id:'200001',phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRequestBodyLimit 13107200
SecRequestBodyNoFilesLimit 131072
SecRequestBodyLimitAction Reject
SecRequestBodyJsonDepthLimit 512
SecArgumentsLimit 1000
SecRule &ARGS "@ge 1000" \
"id:'200007', phase:2,t:none,log,deny,status:400,msg:'Failed to fully parse request body due to large argument count',severity:2"
SecRule REQBODY_ERROR "!@eq 0" \
"id:'200002', phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',logdata:'%{reqbody_error_msg}',severity:2"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" \
"id:'200003',phase:2,t:none,log,deny,status:400,msg:'Multipart request body failed strict validation'"
SecRule MULTIPART_UNMATCHED_BOUNDARY "@eq 1" \
    "id:'200004',phase:2,t:none,log,deny,msg:'Multipart parser detected a possible unmatched boundary.'"
SecPcreMatchLimit 1000
SecPcreMatchLimitRecursion 1000
SecRule TX:/^MSC_/ "!@streq 0" \
        "id:'200005',phase:2,t:none,deny,msg:'ModSecurity internal error flagged: %{MATCHED_VAR_NAME}'"
SecResponseBodyAccess On
SecResponseBodyMimeType text/plain text/html text/xml
SecResponseBodyLimit 524288
SecResponseBodyLimitAction ProcessPartial
SecTmpDir /tmp/
SecDataDir /tmp/
SecAuditEngine RelevantOnly
SecAuditLogRelevantStatus "^(?:5|4(?!04))"
SecAuditLogParts ABIJDEFHZ
SecAuditLogType Serial
SecAuditLog /var/log/modsec_audit.log
SecArgumentSeparator &
SecCookieFormat 0
SecUnicodeMapFile unicode.mapping 20127
SecStatusEngine On
"""

# The CRS regression README's settings, at paranoia level 1 (the brief's PL1 run).
TEST_SETTINGS = r"""
SecAction "id:900005,phase:1,nolog,pass,ctl:ruleRemoveById=910000,\
  setvar:tx.crs_validate_utf8_encoding=1,setvar:tx.arg_name_length=100,\
  setvar:tx.arg_length=400,setvar:tx.total_arg_length=64000,setvar:tx.max_num_args=255,\
  setvar:tx.max_file_size=64100,setvar:tx.combined_file_sizes=65535"
"""


def crs_sources(crs: str, paranoia: int = 1) -> List[Tuple[str, str]]:
    """(name, text) pairs in the order a user loads them."""
    def read(path: str) -> str:
        with open(path, encoding="utf-8") as f:
            return f.read()
    sources = [("<engine.conf>", ENGINE_CONF),
               (os.path.join(crs, "crs-setup.conf.example"),
                read(os.path.join(crs, "crs-setup.conf.example"))),
               ("<test-settings.conf>", TEST_SETTINGS +
                ('SecAction "id:900000,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level=%d"'
                 % paranoia))]
    for path in sorted(glob.glob(os.path.join(crs, "rules", "*.conf"))):
        sources.append((path, read(path)))
    return sources


def load_crs(crs: str, components=None, paranoia: int = 1):
    from revproxy.firewall.seclang.engine import load_waf
    return load_waf(crs_sources(crs, paranoia), components=components)


class Stage(NamedTuple):
    raw: bytes
    expect_ids: Tuple[int, ...]
    no_expect_ids: Tuple[int, ...]
    status: Tuple[int, ...]


class Case(NamedTuple):
    rule_id: int
    test_id: int
    file: str
    stages: Tuple[Stage, ...]


def _ids(log: dict, key: str) -> Tuple[int, ...]:
    v = log.get(key + "s", log.get(key))
    if v is None:
        return ()
    return tuple(int(x) for x in (v if isinstance(v, list) else [v]))


def build_raw(inp: dict) -> bytes:
    """The bytes go-ftw sends for one stage input."""
    if inp.get("encoded_request"):
        return base64.b64decode("".join(inp["encoded_request"].split()))
    if inp.get("raw_request"):
        return inp["raw_request"].encode("utf-8")
    method = str(inp.get("method", "GET"))
    uri = str(inp.get("uri", "/"))
    version = str(inp.get("version", "HTTP/1.1"))
    headers = [(str(k), str(v)) for k, v in (inp.get("headers") or {}).items()]
    data = inp.get("data")
    body = b"" if data is None else str(data).encode("utf-8")
    auto = inp.get("autocomplete_headers", not inp.get("stop_magic", False))
    if auto:
        names = {k.lower() for k, _ in headers}
        if body and "content-length" not in names and "transfer-encoding" not in names:
            headers.append(("Content-Length", str(len(body))))
        if body and "content-type" not in names:
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        if "connection" not in names:
            headers.append(("Connection", "close"))
    head = "%s %s %s\r\n" % (method, uri, version) + "".join(
        "%s: %s\r\n" % kv for kv in headers) + "\r\n"
    return head.encode("utf-8") + body


def load_cases(crs: str, rule_filter: Optional[int] = None) -> List[Case]:
    import yaml
    cases = []
    pattern = os.path.join(crs, "tests", "regression", "tests", "*", "*.yaml")
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8") as f:
            doc = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        if not isinstance(doc, dict):
            continue
        rule_id = int(doc.get("rule_id") or os.path.basename(path).split(".")[0])
        if rule_filter is not None and rule_id != rule_filter:
            continue
        for t in doc.get("tests", []):
            stages = []
            for st in t.get("stages", []):
                st = st.get("stage", st)
                out = st.get("output", {}) or {}
                log = out.get("log", {}) or {}
                status = out.get("status")
                stages.append(Stage(
                    build_raw(st.get("input", {}) or {}),
                    _ids(log, "expect_id"), _ids(log, "no_expect_id"),
                    tuple(status if isinstance(status, list) else
                          ([status] if status is not None else []))))
            cases.append(Case(rule_id, int(t.get("test_id", 0)), path, tuple(stages)))
    return cases


class Parsed(NamedTuple):
    head: Optional[RequestHead]
    body: Optional[bytes]
    refused: Optional[ProtocolError]


def parse_request(raw: bytes) -> Parsed:
    """The first request of ``raw`` through revproxy.http1."""
    p = RequestParser()
    p.feed(raw)
    p.feed_eof()
    head, chunks = None, []
    try:
        while True:
            ev = p.next_event()
            if isinstance(ev, RequestHead):
                head = ev
            elif isinstance(ev, bytes):
                chunks.append(ev)
            elif ev is END or ev is NEED_DATA or ev is CLOSED:
                break
            else:
                break
    except ProtocolError as exc:
        return Parsed(head, None, exc)
    if head is None:
        return Parsed(None, None, ProtocolError(400, "no request"))
    return Parsed(head, b"".join(chunks) if (chunks or head.content_length) else None, None)


def backend_response(head: RequestHead, body: Optional[bytes]
                     ) -> Tuple[int, List[Tuple[bytes, bytes]], bytes]:
    """What the CRS test backend (albedo) answers."""
    if head.target.split(b"?")[0] == b"/reflect" and body:
        try:
            spec = json.loads(body)
        except ValueError:
            spec = {}
        if isinstance(spec, dict):
            out = spec.get("body", "")
            if spec.get("encodedBody"):
                out_b = base64.b64decode(spec["encodedBody"])
            else:
                out_b = str(out).encode("utf-8")
            headers = [(k.lower().encode(), str(v).encode())
                       for k, v in (spec.get("headers") or {}).items()]
            if not any(k == b"content-type" for k, _ in headers):
                headers.append((b"content-type", b"text/plain"))
            return int(spec.get("status", 200)), headers, out_b
    return 200, [(b"content-type", b"text/html")], b"<html><body>ok</body></html>"


def run_stage(waf, raw: bytes, request_id: bytes = b"ftw") -> Tuple[Optional[set], object]:
    """(logged ids, or None when refused by the parser; the Parsed request)."""
    parsed = parse_request(raw)
    if parsed.refused is not None:
        return None, parsed
    h = parsed.head
    view = RequestView("127.0.0.1", 40000, "127.0.0.1", 80, h.method, h.target,
                       b"HTTP/" + h.version, h.headers, request_id)
    tx = waf.transaction(view)
    tx.phase1()
    tx.phase2(parsed.body)
    status, headers, body = backend_response(h, parsed.body)
    tx.phase3(status, headers)
    tx.phase4(body)
    tx.phase5()
    return {m.rule_id for m in tx.matches}, parsed


class Result(NamedTuple):
    case: Case
    passed: bool
    cause: str      # "" when passed, else a short cause
    detail: str


def judge(waf, case: Case) -> Result:
    refused_any = False
    for i, st in enumerate(case.stages):
        try:
            ids, parsed = run_stage(waf, st.raw)
        except Exception as exc:  # an engine bug: report it, keep going
            return Result(case, False, "engine error", "%s: %s" % (type(exc).__name__, exc))
        if ids is None:
            refused_any = True
            protocol_only = bool(st.expect_ids) and all(
                920000 <= x < 921000 for x in st.expect_ids)
            if 400 in st.status or protocol_only:
                continue
            return Result(case, False, "refused by the strict parser",
                          str(parsed.refused))
        missing = [x for x in st.expect_ids if x not in ids]
        unexpected = [x for x in st.no_expect_ids if x in ids]
        if missing:
            return Result(case, False, "expected id not logged",
                          "stage %d: missing %s" % (i + 1, missing))
        if unexpected:
            return Result(case, False, "unexpected id logged",
                          "stage %d: logged %s" % (i + 1, unexpected))
    return Result(case, True, "refused by the strict parser" if refused_any else "", "")


def pl_of_rules(waf) -> Dict[int, int]:
    """rule id -> paranoia level from its ``paranoia-level/N`` tag (1 when untagged)."""
    out = {}
    for rid, (_phase, _msg, tags) in waf.describe().items():
        pl = 1
        for t in tags:
            if t.startswith("paranoia-level/"):
                pl = int(t.split("/", 1)[1])
        out[rid] = pl
    return out


def select_pl1(waf, cases: Iterable[Case]) -> List[Case]:
    pls = pl_of_rules(waf)
    return [c for c in cases if pls.get(c.rule_id) == 1]


def run(waf, cases: Sequence[Case]) -> List[Result]:
    return [judge(waf, c) for c in cases]


def summary(results: Sequence[Result]) -> Dict[str, object]:
    total = len(results)
    passed = sum(1 for r in results if r.passed)
    refused_pass = sum(1 for r in results if r.passed and r.cause)
    causes: Dict[str, int] = {}
    for r in results:
        if not r.passed:
            causes[r.cause] = causes.get(r.cause, 0) + 1
    return {"total": total, "passed": passed, "rate": passed / total if total else 0.0,
            "refused_but_passing": refused_pass, "failures_by_cause": causes}


def main(argv: Sequence[str]) -> int:
    import time
    crs = crs_dir()
    if crs is None:
        print("no CRS v4.28.0 found (set REVPROXY_CRS_DIR)")
        return 2
    components = None
    if "--components" in argv:  # module:function giving an engine.Components
        import importlib
        mod, _, fn = argv[argv.index("--components") + 1].partition(":")
        components = getattr(importlib.import_module(mod), fn or "components")()
    rule = None
    if "--rule" in argv:
        rule = int(argv[argv.index("--rule") + 1])
    t0 = time.time()
    waf = load_crs(crs, components)
    cases = load_cases(crs, rule)
    if "--all" not in argv:
        cases = select_pl1(waf, cases)
    t1 = time.time()
    results = run(waf, cases)
    t2 = time.time()
    s = summary(results)
    for r in results:
        if not r.passed or "-v" in argv:
            print("%s %d-%d %s %s" % ("PASS" if r.passed else "FAIL", r.case.rule_id,
                                      r.case.test_id, r.cause, r.detail[:200]))
    print(json.dumps(s, indent=1))
    print("load %.1fs, run %.1fs (%d tests)" % (t1 - t0, t2 - t1, len(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
