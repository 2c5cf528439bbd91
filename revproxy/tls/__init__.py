"""Client-facing TLS: safe-default contexts, SNI, certificate loading and checks, session
tickets, OCSP stapling, client certificates and the TLS listener.

One module per concern:

- ``defaults``: the protocol versions, ciphers, groups and options every context gets;
- ``pem``: reading and validating certificate/key files (``CertificateProblem``);
- ``sni``: the name -> certificate map (exact, wildcard, default);
- ``contexts``: building OpenSSL contexts for a set of certificates (``ServerTLS``);
- ``ocsp``: stapled OCSP responses;
- ``facts``: what hooks and headers learn about a TLS connection (``TLSFacts``);
- ``endpoints``: ``ssl:`` and ``tls:`` listener descriptions;
- ``listener``: the TLS-wrapping factory that reads the current contexts at each accept;
- ``provider``: the built-in PEM ``ITLSProvider``;
- ``runtime``: everything above built from ``[tls]`` and the listeners, once per config;
- ``ticketkeys``: session ticket keys derived from a secret (shared by workers);
- ``ctrl``: OpenSSL's ``SSL_CTX_ctrl`` (ticket keys, PyPy's group list), which ``elfsyms``
  finds in the binding's symbol table;
- ``compose``: the TLS parts ``revproxy.tap`` composes (listener contexts with ticket keys,
  ALPN, ``--check``, pools' client TLS);
- ``accel``: the ``openssl_provider`` start-up check.
"""
