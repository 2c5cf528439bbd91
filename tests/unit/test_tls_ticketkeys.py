"""Shared session ticket keys (revproxy.tls.ticketkeys): the symbol lookup, the derivation,
and handshakes in memory showing a ticket from one context resuming on another context with
the same keys (as in another worker) and on no other."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from OpenSSL import SSL
from twisted.trial import unittest

from revproxy.testing.tls import client_context, handshake
from revproxy.tls import ctrl, ticketkeys
from revproxy.tls.elfsyms import Symbol, function_symbols
from revproxy.tls.ctrl import bias_of
from revproxy.tls.ticketkeys import KEY_BYTES, derive, period_of, shared_keys
from tests.unit.test_tls_contexts import bundle, fixture, listener


def elf(symbols):
    """A minimal 64-bit little-endian ELF: section 0 null, 1 .strtab, 2 .symtab; ``symbols``
    is ``[(name, info, shndx, value, size)]``."""
    strtab = b"\0"
    entries = [struct.pack("<IBBHQQ", 0, 0, 0, 0, 0, 0)]
    for name, info, shndx, value, size in symbols:
        entries.append(struct.pack("<IBBHQQ", len(strtab), info, 0, shndx, value, size))
        strtab += name.encode() + b"\0"
    symtab = b"".join(entries)
    header_size, strtab_at = 64, 64
    symtab_at = strtab_at + len(strtab)
    shoff = symtab_at + len(symtab)
    header = bytearray(header_size)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x28, shoff)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 0)
    sections = struct.pack("<IIQQQQIIQQ", *([0] * 10))
    sections += struct.pack("<IIQQQQIIQQ", 0, 3, 0, 0, strtab_at, len(strtab), 0, 0, 1, 0)
    sections += struct.pack("<IIQQQQIIQQ", 0, 2, 0, 0, symtab_at, len(symtab), 1, 0, 8, 24)
    return bytes(header) + strtab + symtab + sections


FUNC, OBJECT = 0x02, 0x01


class ElfSymbolTests(unittest.TestCase):
    def test_functions_found_by_exact_name(self):
        """Functions by their whole name; an object, an undefined symbol and a longer name
        sharing the prefix are not taken."""
        data = elf([("SSL_CTX_ctrl_extra", FUNC, 5, 0x10, 4), ("SSL_CTX_ctrl", FUNC, 5, 0x2000, 99),
                    ("SSL_CTX_new", OBJECT, 5, 0x3000, 8), ("SSL_CTX_free", FUNC, 0, 0, 0)])
        found = function_symbols(data, ["SSL_CTX_ctrl", "SSL_CTX_new", "SSL_CTX_free", "x"])
        self.assertEqual(found, {"SSL_CTX_ctrl": Symbol(0x2000, 99)})

    def test_not_elf_or_truncated_is_empty(self):
        data = elf([("SSL_CTX_ctrl", FUNC, 5, 0x2000, 99)])
        self.assertEqual(function_symbols(b"MZ" + data[2:], ["SSL_CTX_ctrl"]), {})
        self.assertEqual(function_symbols(data[:-30], ["SSL_CTX_ctrl"]), {})
        self.assertEqual(function_symbols(b"", ["SSL_CTX_ctrl"]), {})

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=400), st.integers(0, 399), st.binary(min_size=1, max_size=8))
    def test_any_bytes_give_a_dict(self, tail, at, patch):
        """Random and corrupted objects never raise."""
        data = bytearray(elf([("SSL_CTX_ctrl", FUNC, 5, 0x2000, 99)]) + tail)
        data[at:at + len(patch)] = patch
        self.assertIsInstance(function_symbols(bytes(data), ["SSL_CTX_ctrl"]), dict)
        self.assertIsInstance(function_symbols(b"\x7fELF\x02\x01" + tail, ["x"]), dict)

    def test_the_installed_binding_lists_ssl_ctx_ctrl(self):
        """cryptography's wheel (what scripts/setup-env installs) keeps OpenSSL's symbols."""
        path = ctrl._binding()[2]
        with open(path, "rb") as f:
            found = function_symbols(f.read(), ["SSL_CTX_ctrl", "_cffi_d_SSL_CTX_new"])
        self.assertEqual(set(found), {"SSL_CTX_ctrl", "_cffi_d_SSL_CTX_new"})


class BiasTests(unittest.TestCase):
    symbols = {"_cffi_d_" + n: Symbol(0x1000 * (i + 1) + 0x10, 1)
               for i, n in enumerate(ctrl.ANCHORS)}

    def runtime(self, bias, skew=0):
        out = {name: bias + s.value for name, s in self.symbols.items()}
        out["_cffi_d_SSL_CTX_free"] += skew
        return out

    def test_agreeing_page_aligned_bias(self):
        self.assertEqual(bias_of(self.runtime(0x7F0000000000), self.symbols), 0x7F0000000000)

    def test_disagreeing_unaligned_or_missing_is_none(self):
        self.assertIsNone(bias_of(self.runtime(0x7F0000000000, skew=16), self.symbols))
        self.assertIsNone(bias_of(self.runtime(0x7F0000000010), self.symbols))
        partial = self.runtime(0x7F0000000000)
        del partial["_cffi_d_SSL_CTX_new"]
        self.assertIsNone(bias_of(partial, self.symbols))


class DerivationTests(unittest.TestCase):
    def test_same_inputs_same_keys_any_change_other_keys(self):
        secret = b"s" * 32
        keys = derive(secret, "ssl:443", 7)
        self.assertEqual(len(keys), KEY_BYTES)
        self.assertEqual(derive(secret, "ssl:443", 7), keys)
        others = {derive(b"t" * 32, "ssl:443", 7), derive(secret, "ssl:444", 7),
                  derive(secret, "ssl:443", 8)}
        self.assertNotIn(keys, others)
        self.assertEqual(len(others), 3)

    @given(st.floats(0, 4e9), st.integers(1, 10 ** 6))
    def test_period_boundaries(self, now, lifetime):
        """Lifetimes are whole seconds (config durations): the bounds are then exact."""
        period = period_of(now, float(lifetime))
        self.assertLessEqual(period * lifetime, now)
        self.assertGreater((period + 1) * lifetime, now)

    def test_no_lifetime_one_period(self):
        self.assertEqual({period_of(t, 0) for t in (0.0, 1e3, 4e9)}, {0})


class SharedKeysTests(unittest.TestCase):
    def resumed(self, first, second, max_version):
        ctx = client_context(max_version=max_version)
        client, _ = handshake(first, ctx, "site.test")
        client, _ = handshake(second, ctx, "site.test", session=client.get_session())
        from OpenSSL._util import lib

        return bool(lib.SSL_session_reused(client._ssl))

    def contexts(self, keys):
        set_keys, why = ticketkeys.setter()
        self.assertIsNotNone(set_keys, why)
        out = []
        for key in keys:
            context = listener([bundle(fixture().ecdsa)]).dispatch_context(0)
            if key is not None:
                set_keys(context, key)
            out.append(context)
        return out

    def test_a_ticket_resumes_on_another_context_with_the_same_keys(self):
        """TLS 1.3 and 1.2: same keys resume; other keys and OpenSSL's random ones do not."""
        key, other = derive(b"a" * 32, "l", 0), derive(b"b" * 32, "l", 0)
        for version in (None, SSL.TLS1_2_VERSION):
            issuer, twin, stranger, random_keys = self.contexts([key, key, other, None])
            self.assertTrue(self.resumed(issuer, twin, version), version)
            self.assertFalse(self.resumed(issuer, stranger, version), version)
            self.assertFalse(self.resumed(issuer, random_keys, version), version)

    def test_wrong_length_refused(self):
        set_keys, _ = ticketkeys.setter()
        context = self.contexts([None])[0]
        self.assertRaises(ValueError, set_keys, context, b"x" * (KEY_BYTES - 1))

    def test_listeners_of_two_processes_agree_and_rotate_together(self):
        """Two ListenerTLS built at different times from one secret (two workers): the same
        keys in a period, new keys for both at the boundary, old tickets refused after it."""
        keys, why = shared_keys(b"k" * 32)
        self.assertIsNotNone(keys, why)
        make = lambda now: listener([bundle(fixture().ecdsa)], lifetime=100.0, now=now,  # noqa
                                    ticket_keys=keys, label="ssl:8443")
        one, two = make(210.0), make(250.0)
        self.assertEqual((one.period, two.period), (2, 2))
        first = one.dispatch_context(299.0)
        self.assertTrue(self.resumed(first, two.dispatch_context(299.0), None))
        self.assertEqual(one.rotations, 0)
        after_one, after_two = one.dispatch_context(300.0), two.dispatch_context(301.0)
        self.assertEqual((one.rotations, two.rotations, one.period), (1, 1, 3))
        self.assertTrue(self.resumed(after_one, after_two, None))
        self.assertFalse(self.resumed(first, after_two, None))

    def test_another_label_does_not_resume(self):
        keys, _ = shared_keys(b"k" * 32)
        a = listener([bundle(fixture().ecdsa)], ticket_keys=keys, label="ssl:1").dispatch_context(0)
        b = listener([bundle(fixture().ecdsa)], ticket_keys=keys, label="ssl:2").dispatch_context(0)
        self.assertFalse(self.resumed(a, b, None))

    def test_no_secret_no_keys(self):
        self.assertEqual(shared_keys(None), (None, "no shared secret"))

    def test_unresolvable_binding_says_why(self):
        """A binding whose file cannot be read: no setter, and the reason names it."""
        saved = ctrl._resolved, ctrl._binding
        self.addCleanup(setattr, ctrl, "_resolved", saved[0])
        self.addCleanup(setattr, ctrl, "_binding", saved[1])
        ctrl._resolved = None
        ffi, lib, _ = saved[1]()
        ctrl._binding = lambda: (ffi, lib, "/nonexistent/_rust.so")
        set_keys, why = ticketkeys.setter()
        self.assertIsNone(set_keys)
        self.assertIn("/nonexistent/_rust.so", why)
        self.assertEqual(shared_keys(b"k" * 32)[0], None)
