"""The access and error log files: opened once per path, reopened on SIGUSR1 (logrotate).

logrotate renames the file and sends SIGUSR1; ``reopen()`` then opens the path again, so the
following lines go to a new file while the renamed one is complete. Writers hold a
``LogFile`` (not the raw file), so the swap is invisible to them. A reload that names another
path opens it; a file no config names any more stays open for requests still logging to it.
"""

from __future__ import annotations

import sys

from twisted.logger import FileLogObserver, Logger, formatEventAsClassicLogText, globalLogPublisher

log = Logger(namespace="revproxy.logs")


class LogFile:
    """A line-buffered UTF-8 file in append mode that can be reopened at its path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = open(path, "a", buffering=1, encoding="utf-8")

    def write(self, text: str) -> None:
        self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def reopen(self) -> None:
        """Open the path again (creating it); on failure, keep writing to the old file."""
        try:
            fresh = open(self.path, "a", buffering=1, encoding="utf-8")
        except OSError as e:
            log.error("cannot reopen {path}: {e}; still writing to the old file", path=self.path,
                      e=e.strerror or e)
            return
        old, self._file = self._file, fresh
        old.close()

    def close(self) -> None:
        self._file.close()


class LogFiles:
    """Every log file of the process, by path, and the error log observer.

    ``"-"`` is the process's stdout (access log) or twistd's own log (error log), never
    reopened here (twistd rotates its ``--logfile`` itself on SIGUSR1).
    """

    def __init__(self, publisher=globalLogPublisher, stdout=None):
        self._files = {}
        self._publisher = publisher
        self._stdout = stdout
        self._error_path = "-"
        self._error_observer = None

    def open(self, path: str):
        """A writable object with ``write``/``flush`` for ``path`` (shared per path); raises
        OSError."""
        if path == "-":
            return self._stdout if self._stdout is not None else sys.stdout
        found = self._files.get(path)
        if found is None:
            found = self._files[path] = LogFile(path)
        return found

    def set_error_log(self, path: str) -> None:
        """Send log events to ``path`` too (``"-"``: only twistd's log); raises OSError."""
        if path in ("", "-"):
            path = "-"
        if path == self._error_path:
            return
        observer = None
        if path != "-":
            observer = FileLogObserver(self.open(path), formatEventAsClassicLogText)
        if self._error_observer is not None:
            self._publisher.removeObserver(self._error_observer)
        self._error_path, self._error_observer = path, observer
        if observer is not None:
            self._publisher.addObserver(observer)

    def reopen(self) -> None:
        """SIGUSR1: reopen every log file (after logrotate moved them)."""
        for path, handle in sorted(self._files.items()):
            handle.reopen()
        log.info("log files reopened: {paths}", paths=", ".join(sorted(self._files)) or "none")

    def close(self) -> None:
        if self._error_observer is not None:
            self._publisher.removeObserver(self._error_observer)
            self._error_observer, self._error_path = None, "-"
        files, self._files = self._files, {}
        for handle in files.values():
            handle.close()
