"""The application firewall: a SecLang engine that runs the OWASP CRS, plus Python rules.

``revproxy.firewall.seclang`` is the engine (parser, rules, operators, transformations,
body processors), free of Twisted; this package joins it to the proxy (config, hooks, modes,
counters, reload). See docs/firewall.md.
"""
