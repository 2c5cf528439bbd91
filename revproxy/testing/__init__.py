"""Test support for revproxy and its plugin authors: fakes of the interfaces policies see,
and contract tests every ``IBalancer``, ``ICacheStore``, ``IRequestHook`` and ``ITLSProvider``
must pass (``revproxy.testing.balancers``, ``.stores``, ``.hooks``, ``.tls``); throw-away
certificates for tests in ``revproxy.testing.certs``.

A plugin's tests reuse the contract like this::

    from random import Random
    from twisted.trial import unittest
    from revproxy.testing import BalancerContractMixin

    class MyPolicyContractTests(BalancerContractMixin, unittest.TestCase):
        def make_balancer(self):
            return MyPolicy({}, Random(1))
"""

from __future__ import annotations

from revproxy.testing.balancers import (
    BalancerContractMixin,
    FakeMember,
    FakeRequest,
    fake_members,
    varied_request,
)
from revproxy.testing.hooks import RequestHookContractMixin, fake_context
from revproxy.testing.stores import (
    CacheStoreContractMixin, QueuedIO, StreamingCacheStoreContractMixin, sample_entry)
from revproxy.testing.tls import TLSProviderContractMixin

__all__ = [
    "BalancerContractMixin", "CacheStoreContractMixin", "FakeMember", "QueuedIO", "FakeRequest",
    "RequestHookContractMixin", "StreamingCacheStoreContractMixin", "TLSProviderContractMixin",
    "fake_context", "fake_members", "sample_entry", "varied_request",
]
