"""twistd plugin: ``twistd revproxy``. Imports nothing heavy; revproxy.tap loads on use."""

from twisted.application.service import ServiceMaker

revproxy = ServiceMaker(
    "revproxy",
    "revproxy.tap",
    "A reverse proxy: spoon-feeding, pooling, strict HTTP/1.1.",
    "revproxy",
)
