"""Several cores: a supervisor process and N worker processes sharing the listening sockets.

``revproxy.workers.compose`` is what ``tap.makeService`` asks; the other modules each do one
job: the worker count (``count``), the restart back-off (``backoff``, pure), listener
descriptions as sockets to bind (``endpoints``, pure; ``sockets``), the hand-over to a worker
(``spec``, ``inherit``), the supervisor service and its child processes (``supervisor``,
``process``), the config check before a reload (``validate``) and the admin API across
workers (``fanout``, ``merge``, ``metrics``). See docs/workers.md.
"""
