"""The dashboard's static files: served at their paths with types and a strict CSP, the rest
handed to the admin API; the page references only its own files (works offline)."""

from __future__ import annotations

import re
import unittest

from twisted.web import resource
from twisted.web.test.requesthelper import DummyRequest

from revproxy.admin.dashboard import FILES, read_file, with_dashboard


class Api(resource.Resource):
    isLeaf = True

    def render(self, request):
        return b"api:" + request.method + b" " + request.path


def render(root, method, path):
    request = DummyRequest([])
    request.method = method
    request.path = path
    body = root.render(request)
    return request, body


class DashboardFilesTests(unittest.TestCase):
    def test_each_file_served_with_its_type_and_csp(self):
        root = with_dashboard(Api())
        for path, (name, content_type) in FILES.items():
            request, body = render(root, b"GET", path)
            self.assertEqual(body, read_file(name))
            self.assertEqual(request.responseHeaders.getRawHeaders(b"content-type"),
                             [content_type])
            csp = request.responseHeaders.getRawHeaders(b"content-security-policy")[0]
            self.assertIn(b"default-src 'none'", csp)
            self.assertIn(b"connect-src 'self'", csp)

    def test_other_paths_and_methods_go_to_the_api(self):
        root = with_dashboard(Api())
        self.assertEqual(render(root, b"GET", b"/api/stats")[1], b"api:GET /api/stats")
        self.assertEqual(render(root, b"POST", b"/")[1], b"api:POST /")
        self.assertEqual(render(root, b"GET", b"/status")[1], b"api:GET /status")

    def test_head_has_no_body(self):
        request, body = render(with_dashboard(Api()), b"HEAD", b"/dashboard.js")
        self.assertEqual(body, b"")

    def test_no_external_asset_and_no_inline_script(self):
        """Every src/href in the page is a relative file that exists; no inline <script>
        body or style attribute (the CSP would block them); the script calls only
        relative API paths."""
        page = read_file("index.html").decode()
        refs = re.findall(r'(?:src|href)="([^"]+)"', page)
        self.assertEqual(sorted(refs), ["dashboard.css", "dashboard.js"])
        self.assertNotRegex(page, r"<script>[^<]")
        self.assertNotIn("style=", page)
        script = read_file("dashboard.js").decode()
        self.assertNotRegex(script, r"https?://")
        self.assertIn('get("api/stats")', script)
        self.assertIn('get("api/status")', script)
        self.assertNotRegex(read_file("dashboard.css").decode(), r"url\(|@import")

    def test_the_page_is_made_for_phones(self):
        page = read_file("index.html").decode()
        self.assertIn('name="viewport" content="width=device-width, initial-scale=1"', page)
