"""The one compiled part of revproxy, optional: the C libinjection for @detectSQLi/@detectXSS.

Everything else is in pyproject.toml. ``optional=True``: without a C compiler or the Python
headers the build goes on and the pure-Python port serves (as it always does on PyPy, where
the port under the JIT is tested and the extension is not built). csrc/libinjection is
libinjection 3.9.2's C source (BSD licence, csrc/libinjection/COPYING), as ModSecurity v3
bundles it.
"""

import platform

from setuptools import Extension, setup

LIBINJECTION = "csrc/libinjection/"

native = Extension(
    "revproxy.firewall.seclang.libinjection._native",
    sources=["csrc/libinjection_native.c"] + [
        LIBINJECTION + name for name in
        ("libinjection_sqli.c", "libinjection_xss.c", "libinjection_html5.c")],
    include_dirs=[LIBINJECTION],
    depends=[LIBINJECTION + name for name in (
        "libinjection.h", "libinjection_sqli.h", "libinjection_sqli_data.h",
        "libinjection_xss.h", "libinjection_html5.h")],
    optional=True,
)

setup(ext_modules=[native] if platform.python_implementation() == "CPython" else [])
