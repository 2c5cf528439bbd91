"""The request pipeline's shared pieces: the request context and the hook machinery.

The stages themselves live with the I/O they drive (``revproxy.server``): ``ProxyRequest``
(the request's life cycle and hook phases), ``CacheStage`` and ``MemberExchange``.
"""
