"""Protection of the proxy and its backends: IP lists, rate limits, connection limits,
minimum data rates (slow clients), the file-descriptor limit at start-up. Decision logic is
pure; the protocols own the I/O."""
