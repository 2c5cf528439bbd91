"""Requests refused before they became a ProxyRequest (parser errors, a head too slow) get an
access-log line with their status, as nginx does, in both formats."""

from __future__ import annotations

import json

from twisted.trial import unittest

from revproxy.http1.parser import RequestParser
from revproxy.http1.heads import Limits
from revproxy.server.accesslog import AccessLog
from tests.unit.world import World, config_dict


def world_logging(testcase, fmt, limits=None):
    """A World whose access log (format ``fmt``) writes lines into the returned list."""
    data = config_dict(limits=limits or {})
    data["logging"]["access_log"] = "-"
    data["logging"]["access_format"] = fmt
    world = World(testcase, data)
    lines = []
    world.runtime.access_log = AccessLog(lines.append, fmt)
    return world, lines


def refuse(testcase, fmt, data, limits=None):
    """Send ``data`` on a fresh connection; return (response bytes, access-log lines)."""
    world, lines = world_logging(testcase, fmt, limits)
    proto, client = world.client(("192.0.2.7", 4321))
    proto.dataReceived(data)
    testcase.assertTrue(client.disconnecting, "a refused request closes the connection")
    return client.value(), lines, world


class CombinedFormatTests(unittest.TestCase):
    def test_bad_header_is_logged_with_400_and_request_line(self):
        """A malformed header field: 400 in the log with method, target and version."""
        response, [line], _ = refuse(self, "combined",
                                     b"GET /bad HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
        self.assertTrue(response.startswith(b"HTTP/1.1 400 "))
        body = response.split(b"\r\n\r\n", 1)[1]
        self.assertTrue(line.startswith('192.0.2.7 - - ['), line)
        self.assertIn('"GET /bad HTTP/1.1" 400 %d "-" "-" upstream=- ' % len(body), line)
        self.assertIn(" attempts=0", line)
        self.assertTrue(line.endswith("\n"))

    def test_each_parser_status_is_logged(self):
        """413, 414, 431, 501 and 505 from the parser each appear with their status."""
        limits = {"max_request_line": 64, "max_header_bytes": 256}
        cases = [
            (414, b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: a\r\n\r\n"),
            (431, b"GET /h HTTP/1.1\r\nHost: a\r\nX: " + b"b" * 400 + b"\r\n\r\n"),
            (413, b"POST /l HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % 10 ** 19),
            (501, b"POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            (505, b"GET /v HTTP/2.0\r\nHost: a\r\n\r\n"),
        ]
        for status, data in cases:
            response, lines, _ = refuse(self, "combined", data, limits)
            self.assertTrue(response.startswith(b"HTTP/1.1 %d " % status), (status, response))
            self.assertEqual(len(lines), 1, (status, lines))
            self.assertIn('" %d ' % status, lines[0])

    def test_garbage_request_line_is_escaped(self):
        """An unparsable request line is logged as far as it goes, escaped: no quote or
        control byte can break the line."""
        _, [line], _ = refuse(self, "combined", b'G"ET\x01 /x"y\x7f HTTP/1.1\r\nHost: a\r\n\r\n')
        self.assertIn('"G\\"ET\\x01 /x\\"y\\x7F HTTP/1.1" 400 ', line)
        self.assertEqual(line.count("\n"), 1)

    def test_request_id_is_new_and_in_the_line(self):
        """The refused request gets a fresh request id (32 hex digits)."""
        _, [line], _ = refuse(self, "combined", b"GET / HTTP/1.1\r\n\r\n")  # no Host: 400
        rid = line.split(" rid=")[1].split(" ")[0]
        self.assertEqual(len(rid), 32)
        int(rid, 16)

    def test_slow_head_is_logged_408_with_what_arrived(self):
        """A head cut short by header_timeout: 408 with the partial request line; the
        version is not known yet when the line itself is incomplete."""
        world, lines = world_logging(self, "combined", {"header_timeout": 5})
        proto, client = world.client()
        proto.dataReceived(b"GET /slow HTT")
        world.reactor.advance(5.5)
        self.assertTrue(client.value().startswith(b"HTTP/1.1 408 "))
        [line] = lines
        self.assertIn('"GET /slow -" 408 ', line)
        self.assertIn(" total=5.", line)

    def test_silent_connection_408_is_not_a_request(self):
        """A connection that sent nothing before header_timeout is closed with 408 but logs
        no request (nginx neither)."""
        world, lines = world_logging(self, "combined", {"header_timeout": 5})
        proto, client = world.client()
        world.reactor.advance(5.5)
        self.assertTrue(client.value().startswith(b"HTTP/1.1 408 "))
        self.assertEqual(lines, [])

    def test_refusal_after_a_keep_alive_request_is_logged_too(self):
        """The second request on a connection, refused by the parser, gets its own line."""
        world, lines = world_logging(self, "combined")
        proto, client = world.client()
        proto.dataReceived(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
        backend, _ = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        proto.dataReceived(b"GET /two HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        self.assertEqual(len(lines), 2)
        self.assertIn('"GET /ok HTTP/1.1" 200 2 ', lines[0])
        self.assertIn('"GET /two HTTP/1.1" 400 ', lines[1])


class JsonFormatTests(unittest.TestCase):
    def test_refused_request_as_json(self):
        """The JSON line carries status, method, target, version, bytes and a request id."""
        response, [line], _ = refuse(self, "json", b"GET /j HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        record = json.loads(line)
        body = response.split(b"\r\n\r\n", 1)[1]
        self.assertEqual(record["status"], 400)
        self.assertEqual((record["method"], record["target"], record["version"]),
                         ("GET", "/j", "1.1"))
        self.assertEqual(record["bytes_sent"], len(body))
        self.assertEqual(record["client_ip"], "192.0.2.7")
        self.assertEqual(record["upstream"], "-")
        self.assertEqual(record["attempts"], 0)
        self.assertEqual(len(record["request_id"]), 32)

    def test_nothing_known_is_null(self):
        """Too many empty lines before any request line: 400, method/target/version null."""
        _, [line], _ = refuse(self, "json", b"\r\n" * 20)
        record = json.loads(line)
        self.assertEqual(record["status"], 400)
        self.assertEqual((record["method"], record["target"], record["version"]),
                         (None, None, None))


class PartialRequestLineTests(unittest.TestCase):
    def parse(self, data, max_line=8000):
        parser = RequestParser(Limits(max_request_line=max_line))
        parser.feed(data)
        return parser.partial_request_line()

    def test_complete_line(self):
        """A complete line gives all three parts, version without HTTP/."""
        self.assertEqual(self.parse(b"PUT /a?b HTTP/1.0\r\nX"), (b"PUT", b"/a?b", b"1.0"))

    def test_incomplete_line_has_no_version(self):
        """Before CRLF the version may be cut short: it is not reported."""
        self.assertEqual(self.parse(b"GET /abc HTTP/1."), (b"GET", b"/abc", None))
        self.assertEqual(self.parse(b"GET /ab"), (b"GET", b"/ab", None))
        self.assertEqual(self.parse(b""), (None, None, None))

    def test_reads_at_most_max_line(self):
        """An endless line is read only up to the line limit."""
        method, target, version = self.parse(b"GET /" + b"x" * 10000, max_line=100)
        self.assertEqual(method, b"GET")
        self.assertLessEqual(len(target), 102)
        self.assertIsNone(version)
