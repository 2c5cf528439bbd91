"""Round-robin, smooth weighted round-robin, least-connections and peak-EWMA: their choices."""

from __future__ import annotations

from collections import Counter
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from revproxy.balancing.ewma import PeakEwmaBalancer
from revproxy.balancing.leastconn import LeastConnectionsBalancer
from revproxy.balancing.roundrobin import RoundRobinBalancer
from revproxy.balancing.weighted import WeightedRoundRobinBalancer
from revproxy.testing import FakeMember, FakeRequest


def named(*names, **stats):
    return [FakeMember(name, **stats) for name in names]


def picks(balancer, candidates, count, request=None):
    return [balancer.pick(candidates, request or FakeRequest()).name for _ in range(count)]


class RoundRobinTests(unittest.TestCase):
    def test_cycles_in_member_order(self):
        """Without a random start, picks go a b c a b c."""
        balancer = RoundRobinBalancer()
        members = named("a", "b", "c")
        balancer.set_members(members)
        self.assertEqual(picks(balancer, members, 6), list("abcabc"))

    def test_skips_non_candidates_fairly(self):
        """With b out, a c d share the turns equally and keep the ring order."""
        balancer = RoundRobinBalancer()
        members = named("a", "b", "c", "d")
        balancer.set_members(members)
        chosen = picks(balancer, [members[0], members[2], members[3]], 300)
        self.assertEqual(chosen[:6], list("acdacd"))
        self.assertEqual(Counter(chosen), {"a": 100, "c": 100, "d": 100})

    def test_candidates_in_another_order_follow_the_ring(self):
        """The ring order is set_members' order, whatever order the candidates come in."""
        balancer = RoundRobinBalancer()
        members = named("a", "b", "c")
        balancer.set_members(members)
        self.assertEqual(picks(balancer, [members[2], members[1]], 4), list("bcbc"))

    def test_random_start_spreads_processes(self):
        """Seeded with different randoms, new balancers do not all start on member 0."""
        members = named("a", "b", "c", "d")
        firsts = set()
        for seed in range(20):
            balancer = RoundRobinBalancer({}, Random(seed))
            balancer.set_members(members)
            firsts.add(balancer.pick(members, FakeRequest()).name)
        self.assertGreater(len(firsts), 1)

    def test_growing_the_pool_keeps_the_turn(self):
        """Adding a member does not send the next pick back to the first member."""
        balancer = RoundRobinBalancer()
        members = named("a", "b", "c")
        balancer.set_members(members)
        self.assertEqual(picks(balancer, members, 2), ["a", "b"])
        members = members + named("d")
        balancer.set_members(members)
        self.assertEqual(picks(balancer, members, 3), ["c", "d", "a"])

    def test_legacy_pick_of_members_without_set_members(self):
        """RoundRobinBalancer().pick(members) rotates over the list given; an empty one gives None."""
        balancer = RoundRobinBalancer()
        members = named("a", "b")
        self.assertIsNone(balancer.pick([]))
        self.assertEqual([balancer.pick(members).name for _ in range(3)], ["a", "b", "a"])

    def test_rejects_options(self):
        """round-robin takes no options: any is a ValueError naming it."""
        error = self.assertRaises(ValueError, RoundRobinBalancer, {"speed": 2})
        self.assertIn("'speed'", str(error))


class WeightedRoundRobinTests(unittest.TestCase):
    def test_nginx_example_sequence(self):
        """Weights 5, 1, 1 give a a b a c a a, period after period (nginx's example)."""
        balancer = WeightedRoundRobinBalancer()
        members = [FakeMember("a", 5), FakeMember("b", 1), FakeMember("c", 1)]
        balancer.set_members(members)
        self.assertEqual(picks(balancer, members, 14), list("aabacaa") * 2)

    def test_non_candidates_sit_out(self):
        """With the heavy member out, the others alternate."""
        balancer = WeightedRoundRobinBalancer()
        members = [FakeMember("a", 5), FakeMember("b", 1), FakeMember("c", 1)]
        balancer.set_members(members)
        self.assertEqual(picks(balancer, members[1:], 4), list("bcbc"))

    def test_weight_changes_apply_at_the_next_pick(self):
        """A member whose effective weight rises gets more picks straight away."""
        balancer = WeightedRoundRobinBalancer()
        members = named("a", "b")
        balancer.set_members(members)
        picks(balancer, members, 10)
        members[1].weight = 3.0
        self.assertEqual(Counter(picks(balancer, members, 40)), {"a": 10, "b": 30})

    def test_note_explains_the_score(self):
        """The note gives the winning score and the total weight."""
        balancer = WeightedRoundRobinBalancer()
        members = [FakeMember("a", 5), FakeMember("b", 1)]
        balancer.set_members(members)
        request = FakeRequest()
        balancer.pick(members, request)
        self.assertEqual(request.notes, ["score 5 of total weight 6"])

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.integers(1, 10), min_size=1, max_size=6))
    def test_integer_weights_give_exact_shares_each_period(self, weights):
        """Over sum(weights) picks, each member is picked exactly its weight times."""
        balancer = WeightedRoundRobinBalancer()
        members = [FakeMember("m%d" % i, w) for i, w in enumerate(weights)]
        balancer.set_members(members)
        counts = Counter(picks(balancer, members, sum(weights) * 3))
        self.assertEqual(counts, {m.name: m.weight * 3 for m in members})

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.floats(0.1, 10.0), min_size=1, max_size=6), st.integers(1, 1000))
    def test_float_weights_converge_to_shares(self, weights, count):
        """After any number of picks, each count is within (-(n-1), 1) picks of its share
        (scores stay above -total and sum to 0)."""
        balancer = WeightedRoundRobinBalancer()
        members = [FakeMember("m%d" % i, w) for i, w in enumerate(weights)]
        balancer.set_members(members)
        counts = Counter(picks(balancer, members, count))
        total = sum(weights)
        for member in members:
            deviation = counts[member.name] - count * member.weight / total
            self.assertGreater(deviation, -(len(members) - 1) - 1e-9)
            self.assertLess(deviation, 1 + 1e-9)


class LeastConnectionsTests(unittest.TestCase):
    def test_fewest_in_flight_wins_and_is_noted(self):
        """2 in flight beats 5; the note says "conns 2/w1 vs 5/w1"."""
        balancer = LeastConnectionsBalancer()
        members = [FakeMember("a", in_flight=5), FakeMember("b", in_flight=2),
                   FakeMember("c", in_flight=9)]
        request = FakeRequest()
        self.assertEqual(balancer.pick(members, request).name, "b")
        self.assertEqual(request.notes, ["conns 2/w1 vs 5/w1"])

    def test_weight_divides_the_load(self):
        """3 in flight at weight 4 (cost 1) beats 1 in flight at weight 1 (cost 2)."""
        balancer = LeastConnectionsBalancer()
        members = [FakeMember("a", weight=1, in_flight=1), FakeMember("b", weight=4, in_flight=3)]
        self.assertEqual(balancer.pick(members, FakeRequest()).name, "b")

    def test_an_idle_member_with_small_weight_is_not_free(self):
        """(in_flight + 1) / weight: idle at weight 0.1 costs 10, more than 4 in flight (5)."""
        balancer = LeastConnectionsBalancer()
        members = [FakeMember("slow-start", weight=0.1), FakeMember("busy", in_flight=4)]
        self.assertEqual(balancer.pick(members, FakeRequest()).name, "busy")

    def test_ties_are_taken_in_turn(self):
        """Three equal members are each picked once in three picks, and again in the next three."""
        balancer = LeastConnectionsBalancer()
        members = named("a", "b", "c", in_flight=1) + named("d", in_flight=7)
        chosen = picks(balancer, members, 6)
        self.assertEqual(sorted(chosen[:3]), ["a", "b", "c"])
        self.assertEqual(sorted(chosen[3:]), ["a", "b", "c"])

    def test_tie_note_names_the_other_tied_member(self):
        """On a tie, the note compares with another member of equal cost."""
        balancer = LeastConnectionsBalancer()
        request = FakeRequest()
        balancer.pick(named("a", "b"), request)
        self.assertEqual(request.notes, ["conns 0/w1 vs 0/w1"])

    def test_a_single_candidate_note(self):
        """One candidate: it, and the note says so."""
        request = FakeRequest()
        self.assertEqual(LeastConnectionsBalancer().pick(named("a"), request).name, "a")
        self.assertEqual(request.notes, ["conns 0/w1, the only candidate"])


class PeakEwmaTests(unittest.TestCase):
    def test_one_candidate_without_drawing(self):
        """One candidate is returned without touching the random."""
        rng = Random(3)
        state = rng.getstate()
        member = FakeMember("a", ewma=0.5)
        self.assertIs(PeakEwmaBalancer({}, rng).pick([member], FakeRequest()), member)
        self.assertEqual(rng.getstate(), state)

    def test_lower_cost_wins_and_is_noted(self):
        """12 ms with 1 in flight (cost 24) beats 40 ms idle (cost 40); the note shows both."""
        balancer = PeakEwmaBalancer({}, Random(1))
        members = [FakeMember("a", ewma=0.012, in_flight=1), FakeMember("b", ewma=0.040)]
        for _ in range(20):
            request = FakeRequest()
            self.assertEqual(balancer.pick(members, request).name, "a")
        self.assertEqual(request.notes, ["ewma 12.0ms×2/w1 vs 40.0ms×1/w1"])

    def test_the_two_draws_are_distinct(self):
        """Of two members the faster always wins: a member is never compared with itself."""
        balancer = PeakEwmaBalancer({}, Random(5))
        members = [FakeMember("fast", ewma=0.01), FakeMember("slow", ewma=0.1)]
        self.assertEqual(set(picks(balancer, members, 200)), {"fast"})

    def test_a_slow_member_gets_only_its_share_of_comparisons(self):
        """Of ten members, one 10x slower is never chosen while the others are idle;
        the others share the picks."""
        balancer = PeakEwmaBalancer({}, Random(2))
        members = named(*"abcdefghi", ewma=0.01) + named("slow", ewma=0.1)
        counts = Counter(picks(balancer, members, 2000))
        self.assertEqual(counts["slow"], 0)
        self.assertEqual(len(counts), 9)

    def test_new_member_costs_the_smallest_known_ewma(self):
        """A member with no response yet is costed at the fastest known EWMA, not 1 ms:
        with one request in flight it loses to an idle 10 ms member."""
        balancer = PeakEwmaBalancer({}, Random(1))
        members = [FakeMember("new", in_flight=1), FakeMember("known", ewma=0.010),
                   FakeMember("slower", ewma=0.030)]
        request = FakeRequest()
        chosen = [balancer.pick(members[:2], request).name for _ in range(20)]
        self.assertEqual(set(chosen), {"known"})
        self.assertIn("10.0ms×2/w1", request.notes[-1])

    def test_default_rtt_when_nobody_has_answered(self):
        """All members new: default_rtt (default 1 ms, or the option) is used."""
        members = named("a", "b")
        for options, shown in (({}, "1.0ms"), ({"default_rtt": 0.25}, "250.0ms")):
            request = FakeRequest()
            PeakEwmaBalancer(options, Random(1)).pick(members, request)
            self.assertIn(shown, request.notes[0])

    def test_same_seed_same_choices(self):
        """Picks depend only on the random given: the same seed repeats them."""
        members = named(*"abcdef", ewma=0.02)
        runs = [picks(PeakEwmaBalancer({}, Random(9)), members, 50) for _ in range(2)]
        self.assertEqual(runs[0], runs[1])

    def test_bad_default_rtt(self):
        """default_rtt must be a number > 0; the error names the option."""
        for value in (0, -1, "1ms", True):
            error = self.assertRaises(
                ValueError, PeakEwmaBalancer, {"default_rtt": value}, Random())
            self.assertIn("default_rtt", str(error))
