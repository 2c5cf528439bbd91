"""A headless Chromium driven over the DevTools protocol through a pipe, for browser tests.

``--remote-debugging-pipe`` makes Chromium read protocol messages from its fd 3 and write
answers and events to its fd 4, each message JSON ended by a NUL byte. Twisted's
``spawnProcess`` maps those two descriptors directly, so no WebSocket client (and no extra
dependency) is needed, and no debugging port is opened that another local user could reach.
"""

from __future__ import annotations

import base64
import json
import os
import shutil

from twisted.internet import defer, protocol, task

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium():
    """The path of a Chromium binary, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class DevToolsError(Exception):
    pass


class Browser(protocol.ProcessProtocol):
    """One Chromium process; ``call(method, params, session)`` returns a Deferred of the
    result, ``evaluate(expression)`` the value of a JavaScript expression in the page."""

    def __init__(self, reactor):
        self._reactor = reactor
        self._buffer = b""
        self._next_id = 0
        self._waiting = {}
        self.session = None
        self.stderr = b""
        self.ended = defer.Deferred()

    @classmethod
    def launch(cls, reactor, binary, profile_dir, width=1200, height=900):
        """Start Chromium headless with its own profile; the caller must ``close()`` it."""
        browser = cls(reactor)
        args = [binary, "--headless", "--no-sandbox",  # CI runs as root: no sandbox there
                "--remote-debugging-pipe", "--user-data-dir=" + profile_dir,
                "--no-first-run", "--no-default-browser-check", "--disable-gpu",
                "--disable-dev-shm-usage", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--no-proxy-server", "--hide-scrollbars", "--mute-audio",
                "--window-size=%d,%d" % (width, height), "about:blank"]
        env = {"HOME": profile_dir, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        reactor.spawnProcess(browser, binary, args, env=env,
                             childFDs={0: "w", 1: "r", 2: "r", 3: "w", 4: "r"})
        return browser

    # -- the protocol ----------------------------------------------------------------------------
    def childDataReceived(self, fd, data):
        if fd == 2:
            self.stderr = (self.stderr + data)[-20000:]
            return
        if fd != 4:
            return
        self._buffer += data
        while b"\0" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\0", 1)
            message = json.loads(raw.decode("utf-8"))
            d = self._waiting.pop(message.get("id"), None)
            if d is None:
                continue  # an event: not needed by these tests
            if "error" in message:
                d.errback(DevToolsError(message["error"]))
            else:
                d.callback(message.get("result", {}))

    def processEnded(self, reason):
        waiting, self._waiting = self._waiting, {}
        for d in waiting.values():
            d.errback(DevToolsError("chromium ended: %s" % self.stderr[-2000:].decode(
                "utf-8", "replace")))
        self.ended.callback(reason.value.exitCode)

    def call(self, method, params=None, session=None):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        d = self._waiting[self._next_id] = defer.Deferred()
        self.transport.writeToChild(3, json.dumps(message).encode("utf-8") + b"\0")
        return d

    # -- what the tests use ------------------------------------------------------------------------
    @defer.inlineCallbacks
    def open(self, url):
        """Open ``url`` in a new page and attach to it (later calls go to that page)."""
        target = yield self.call("Target.createTarget", {"url": "about:blank"})
        attached = yield self.call("Target.attachToTarget",
                                   {"targetId": target["targetId"], "flatten": True})
        self.session = attached["sessionId"]
        yield self.call("Page.enable", session=self.session)
        yield self.call("Runtime.enable", session=self.session)
        yield self.call("Page.navigate", {"url": url}, session=self.session)

    def page(self, method, params=None):
        return self.call(method, params, session=self.session)

    @defer.inlineCallbacks
    def evaluate(self, expression):
        """The JSON value of ``expression`` in the page (exceptions raise DevToolsError)."""
        answer = yield self.page("Runtime.evaluate", {"expression": expression,
                                                      "returnByValue": True})
        if "exceptionDetails" in answer:
            raise DevToolsError("%s: %s" % (expression, answer["exceptionDetails"]))
        return answer["result"].get("value")

    @defer.inlineCallbacks
    def wait_for(self, expression, timeout=20.0, interval=0.1):
        """Evaluate ``expression`` until it is truthy (its value), at most ``timeout`` s."""
        deadline = self._reactor.seconds() + timeout
        last = None
        while True:
            try:
                last = yield self.evaluate(expression)
            except DevToolsError as e:  # the page is still loading
                last = e
            if last and not isinstance(last, Exception):
                return last
            if self._reactor.seconds() > deadline:
                raise AssertionError("timed out after %gs waiting for %s (last: %r)"
                                     % (timeout, expression, last))
            yield task.deferLater(self._reactor, interval, lambda: None)

    @defer.inlineCallbacks
    def screenshot(self, path):
        """Save a PNG of the page at ``path``."""
        shot = yield self.page("Page.captureScreenshot", {"format": "png"})
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        return path

    @defer.inlineCallbacks
    def close(self):
        if self.ended.called:
            return
        try:
            yield self.call("Browser.close").addTimeout(5, self._reactor)
        except Exception:
            pass
        if not self.ended.called:
            try:
                self.transport.signalProcess("KILL")
            except Exception:
                pass
        yield self.ended
