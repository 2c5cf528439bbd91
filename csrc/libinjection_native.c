/*
 * revproxy.firewall.seclang.libinjection._native: the C libinjection 3.9.2 (csrc/libinjection,
 * BSD licence, see its COPYING) for @detectSQLi and @detectXSS, on raw bytes.
 *
 *   sqli(data: bytes) -> bytes | None   the fingerprint (b"s&sos") when data is SQL injection
 *   xss(data: bytes) -> bool            whether data holds an XSS vector
 *
 * Built by setup.py as an optional extension (a missing compiler leaves the pure-Python port,
 * revproxy/firewall/seclang/libinjection/_sqli.py and _xss.py, in charge). ModSecurity calls
 * the same two functions with the value's bytes and length, as these do: embedded NULs and
 * bytes that are not UTF-8 are passed as they are.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "libinjection.h"
#include "libinjection_sqli.h"

static PyObject *
native_sqli(PyObject *self, PyObject *arg)
{
    char *data;
    Py_ssize_t size;
    char fingerprint[8];

    if (PyBytes_AsStringAndSize(arg, &data, &size) < 0)
        return NULL;
    memset(fingerprint, 0, sizeof(fingerprint));
    if (libinjection_sqli(data, (size_t)size, fingerprint))
        return PyBytes_FromString(fingerprint);
    Py_RETURN_NONE;
}

static PyObject *
native_xss(PyObject *self, PyObject *arg)
{
    char *data;
    Py_ssize_t size;

    if (PyBytes_AsStringAndSize(arg, &data, &size) < 0)
        return NULL;
    if (libinjection_xss(data, (size_t)size))
        Py_RETURN_TRUE;
    Py_RETURN_FALSE;
}

static PyObject *
native_version(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(libinjection_version());
}

static PyMethodDef native_methods[] = {
    {"sqli", native_sqli, METH_O, "sqli(data: bytes) -> fingerprint bytes, or None"},
    {"xss", native_xss, METH_O, "xss(data: bytes) -> bool"},
    {"version", native_version, METH_NOARGS, "the libinjection version"},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native",
    "The C libinjection for @detectSQLi / @detectXSS (see csrc/libinjection_native.c).",
    -1, native_methods
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModule_Create(&native_module);
}
