"""Response compression (gzip, brotli, zstd): negotiation, encoders, the per-response stage.

``negotiate`` chooses a content coding from ``Accept-Encoding`` (pure); ``encoders`` wraps
the libraries that are importable here; ``policy`` decides, from a request and a response
head, whether a response is transformed and how its header fields change (pure); ``stage``
is the per-response object the ``ProxyRequest`` feeds body pieces through.
"""
