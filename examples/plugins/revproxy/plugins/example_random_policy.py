"""An example balancing-policy plugin: "random", a uniform choice among the candidates.

How to write a policy plugin
----------------------------
1. Write a class providing ``revproxy.interfaces.IBalancer``: a ``name``, and
   ``set_members(members)``, ``pick(candidates, request)``, ``started(member)`` and
   ``finished(member, ok, duration)``. ``pick`` must return one element of ``candidates``
   (never None), must not block or do I/O, and must not read the clock: draw randomness
   only from the ``random.Random`` you are given, so tests can seed it. Read members'
   ``weight``, ``in_flight`` and ``ewma``; never change them. ``request.note(fmt, *args)``
   explains a choice in the debug header; it formats lazily, so pass arguments, not a
   formatted string.
2. Write a factory providing ``twisted.plugin.IPlugin`` and
   ``revproxy.interfaces.IBalancerFactory``: ``name`` (what ``balance = "..."`` says in the
   config), a one-line ``description``, and ``build(options, random)`` returning a new
   policy. Raise ``ValueError`` with a readable message for bad ``options``.
3. Put a module-level instance of the factory in a module in a directory
   ``revproxy/plugins/`` on ``sys.path`` (this one lives in ``examples/plugins``), with
   NO ``__init__.py`` in ``revproxy/`` or ``revproxy/plugins/`` there: revproxy finds it
   with ``twisted.plugin.getPlugins``, which imports every such module, so keep the module
   light (import heavy code inside ``build``). A name already taken is a start-up error.
4. Test it with ``revproxy.testing.BalancerContractMixin``::

       class RandomContractTests(BalancerContractMixin, unittest.TestCase):
           def make_balancer(self):
               return random_policy.build({}, Random(1))

Then a pool uses it with ``balance = "random"``.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer

from revproxy.interfaces import IBalancer, IBalancerFactory


@implementer(IBalancer)
class RandomBalancer:
    """Each pick is a uniform draw among the candidates; ignores weights and statistics."""

    name = "random"

    def __init__(self, random):
        self._random = random

    def set_members(self, members):
        pass  # nothing precomputed: every pick looks only at the candidates

    def pick(self, candidates, request):
        chosen = candidates[self._random.randrange(len(candidates))]
        request.note("uniform draw among %d", len(candidates))
        return chosen

    def started(self, member):
        pass

    def finished(self, member, ok, duration):
        pass


@implementer(IPlugin, IBalancerFactory)
class RandomPolicyFactory:
    """Offers ``RandomBalancer`` under the name "random"; it takes no options."""

    name = "random"
    description = "a uniform random choice among the candidates (example plugin)"

    def build(self, options, random):
        if options:
            raise ValueError(
                "balance 'random' takes no options, got %s" % ", ".join(sorted(options))
            )
        return RandomBalancer(random)


# The object getPlugins finds: a module-level instance providing IPlugin.
random_policy = RandomPolicyFactory()
