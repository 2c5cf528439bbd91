"""Protection of the proxy and its backends: IP lists, limits, slow-client defence."""
