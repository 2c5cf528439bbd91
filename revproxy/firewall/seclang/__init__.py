"""A SecLang rule engine (ModSecurity / Coraza rule language), pure Python, no I/O at request
time. ``api`` is the contract between the engine and the proxy; read it first."""
