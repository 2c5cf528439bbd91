"""``python -m revproxy.ctl``: a command-line client for the admin API (docs/operations.md).

``cli`` parses the command line into a ``Command`` (pure), ``client`` calls the admin API
with treq, ``tables`` turns its JSON into readable text (pure). Exit codes: see ``cli``.
"""
