"""Protection against abusive clients: minimum data rates (slow clients), connection limits,
the file-descriptor limit at start-up. Decision logic is pure; the protocols own the I/O."""
