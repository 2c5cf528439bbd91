"""Request facts for policies: headers, cookies, lazily formatted notes."""

from __future__ import annotations

from twisted.trial import unittest
from zope.interface.verify import verifyObject

from revproxy.balancing.facts import RequestFacts, find_cookie
from revproxy.interfaces import IRequestFacts


class RequestFactsTests(unittest.TestCase):
    def test_provides_interface(self):
        """RequestFacts provides IRequestFacts."""
        verifyObject(IRequestFacts, RequestFacts("1.2.3.4", b"h", "/", []))

    def test_header_and_cookie(self):
        """First header value; cookies found across several Cookie fields, quotes removed."""
        headers = [(b"x-a", b"1"), (b"x-a", b"2"), (b"cookie", b"a=1; sid=xyz"),
                   (b"cookie", b'other="q"')]
        facts = RequestFacts("1.2.3.4", b"h", "/", headers)
        self.assertEqual(facts.header(b"x-a"), b"1")
        self.assertIsNone(facts.header(b"x-b"))
        self.assertEqual(facts.cookie(b"sid"), b"xyz")
        self.assertEqual(facts.cookie(b"other"), b"q")
        self.assertIsNone(facts.cookie(b"none"))

    def test_cookie_name_is_exact(self):
        """A cookie whose name merely contains the wanted one does not match."""
        self.assertIsNone(find_cookie([(b"cookie", b"xsid=1")], b"sid"))

    def test_notes_formatted_on_demand(self):
        """Notes are kept as (format, args) and joined only by explain()."""
        facts = RequestFacts("1.2.3.4", b"h", "/", [])
        self.assertEqual(facts.explain(), "")
        facts.note("ewma %dms vs %dms", 12, 40)
        facts.note("pick %s", "a")
        self.assertEqual(facts.explain(), "ewma 12ms vs 40ms; pick a")
