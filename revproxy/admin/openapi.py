"""``GET /openapi.json``: the OpenAPI 3.0 description of the admin API (pure data).

Kept beside the route table (``revproxy.admin.site.default_routes``): a test walks every
path documented here against a live admin listener and checks every route is documented.
"""

from __future__ import annotations

_ERROR = {"description": "An error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}
_COMMON = {"401": {"$ref": "#/components/responses/Unauthorized"},
           "405": {"$ref": "#/components/responses/MethodNotAllowed"}}


def _json(description, schema=None):
    return {"description": description, "content": {"application/json": {
        "schema": schema or {"type": "object"}}}}


def _op(summary, responses, **extra):
    operation = {"summary": summary, "responses": dict(responses, **_COMMON)}
    operation.update(extra)
    return operation


_COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
_PERCENTILES = {"type": "object", "properties": {
    "p50": {"type": "number"}, "p90": {"type": "number"}, "p99": {"type": "number"}}}
_STATS = {"type": "object", "required": ["time", "requests", "latency_ms",
                                         "upstream_latency_ms", "members", "cache",
                                         "firewall", "rate_limited", "connections"],
          "properties": {
              "time": {"type": "number", "description": "Unix time of the document"},
              "requests": _COUNTS,
              "latency_ms": _PERCENTILES,
              "upstream_latency_ms": _PERCENTILES,
              "members": {"type": "object", "description": "pool -> member -> "
                          "{state, requests, errors, inflight}"},
              "cache": {"type": "object", "properties": {
                  "hits": {"type": "integer"}, "misses": {"type": "integer"},
                  "stale": {"type": "integer"}, "ratio": {"type": "number"}}},
              "firewall": {"type": "object", "properties": {
                  "blocked": {"type": "integer"}, "detected": {"type": "integer"}}},
              "rate_limited": {"type": "integer"},
              "connections": {"type": "integer"}}}
_MEMBER_PARAMS = [
    {"name": "pool", "in": "path", "required": True, "schema": {"type": "string"},
     "example": "main"},
    {"name": "member", "in": "path", "required": True, "schema": {"type": "string"},
     "description": "the member's name as the status shows it (host:port), percent-encoded",
     "example": "127.0.0.1:8001"},
]
_PURGE_BODY = {"content": {"application/json": {"schema": {"type": "object", "properties": {
    "url": {"type": "string", "description": "http(s)://host/path?query: one URL"},
    "prefix": {"type": "string", "description": "every key starting with it"},
    "tag": {"type": "string", "description": "a Cache-Tag / Surrogate-Key value"},
    "soft": {"type": "boolean", "description": "mark stale instead of deleting"}}}}}}


def _member_action(summary):
    return {"post": _op(summary, {
        "200": _json("The member's state after the action"),
        "404": _ERROR}, parameters=_MEMBER_PARAMS, tags=["members"])}


def openapi_document() -> dict:
    paths = {
        "/api/status": {"get": _op("Listeners, routes, pools and members, cache, firewall, "
                                   "rate limits, spool, connections, workers, mirrors",
                                   {"200": _json("The status document")}, tags=["status"])},
        "/status": {"get": _op("Alias of /api/status", {"200": _json("The status document")},
                               tags=["status"], deprecated=True)},
        "/api/stats": {"get": _op("Compact live counters (monotonic) for dashboards",
                                  {"200": _json("The counters", _STATS)}, tags=["status"])},
        "/api/members/{pool}/{member}/drain": _member_action(
            "No new requests for the member; requests in flight finish"),
        "/api/members/{pool}/{member}/disable": _member_action(
            "Like drain, and its idle connections close"),
        "/api/members/{pool}/{member}/enable": _member_action(
            "Undo drain/disable (the member ramps up through slow start)"),
        "/api/members/{pool}/{member}/weight": {"post": _op(
            "Set the member's weight (null: back to the configured one)",
            {"200": _json("The member's state after the change"), "400": _ERROR,
             "404": _ERROR},
            parameters=_MEMBER_PARAMS + [{"name": "weight", "in": "query", "required": False,
                                          "schema": {"type": "integer", "minimum": 0,
                                                     "maximum": 1000}}],
            requestBody={"content": {"application/json": {"schema": {
                "type": "object", "properties": {"weight": {
                    "type": "integer", "nullable": True, "minimum": 0, "maximum": 1000}}}}}},
            tags=["members"])},
        "/api/purge": {"post": _op(
            "Purge the cache by url, prefix or tag (JSON body or query string)",
            {"200": _json("How many entries were purged (-1: the store cannot count)"),
             "400": _ERROR, "409": _ERROR}, requestBody=_PURGE_BODY, tags=["cache"])},
        "/purge": {"post": _op("Alias of /api/purge (query string)", {
            "200": _json("{\"purged\": N}"), "400": _ERROR, "409": _ERROR},
            tags=["cache"], deprecated=True)},
        "/api/reload": {"post": _op(
            "Reload the configuration as SIGHUP does",
            {"200": _json("Applied: {reloaded: true, generation}"),
             "409": _json("Refused (the running configuration stays): {reloaded: false, "
                          "error, generation}")}, tags=["control"])},
        "/openapi.json": {"get": _op("This document", {"200": _json("OpenAPI 3.0")},
                                     tags=["meta"])},
        "/metrics": {"get": _op("Prometheus metrics (text exposition format)", {
            "200": {"description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}}}},
            tags=["meta"])},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "revproxy admin API", "version": "1",
                 "description": "The admin listener of revproxy (docs/admin.md). Every "
                                "error is {\"error\": \"...\"}."},
        "security": [{"bearer": []}, {}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "[admin] token / token_file"}},
            "schemas": {"Error": {"type": "object", "required": ["error"],
                                  "properties": {"error": {"type": "string"}}}},
            "responses": {
                "Unauthorized": {"description": "No valid bearer token (a token is "
                                                "configured)", "content": {"application/json":
                                                {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "MethodNotAllowed": {"description": "Wrong method (see Allow)", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        },
    }
