"""revproxy: a production reverse proxy on Twisted."""
