"""
Tests for L{sshfinger.ops.descriptors}: the descriptor limit and finger's share of it.
"""

from __future__ import annotations

import resource

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.finger.protocol import FingerFactory
from sshfinger.finger.service import FingerService
from sshfinger.ops.descriptors import finger_connection_cap, raise_descriptor_limit
from sshfinger.store.cached import CachedStore
from sshfinger.store.memory import MemoryBackend


class FingerCapTests(SynchronousTestCase):
    """
    L{finger_connection_cap}.
    """

    def test_fits_under_the_limit(self) -> None:
        """
        The configured cap stands under a large limit; under a small one it drops to a quarter of it, never
        below 16; an unlimited table changes nothing.
        """
        self.assertEqual(finger_connection_cap(512, 65536), 512)
        self.assertEqual(finger_connection_cap(512, 1024), 256)
        self.assertEqual(finger_connection_cap(512, 40), 16)
        self.assertEqual(finger_connection_cap(512, resource.RLIM_INFINITY), 512)

    def test_factory_fits_its_cap_at_start(self) -> None:
        """
        A finger factory started under a limit of 64 descriptors caps its connections in all at a quarter of it
        (the floor, 16), whatever was configured.
        """
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        clock = Clock()
        store = CachedStore(MemoryBackend(), clock.seconds)
        store.open()
        factory = FingerFactory(FingerService(store, clock), clock, max_connections=512)
        factory.doStart()
        self.addCleanup(factory.doStop)
        self.assertEqual(factory.limits.max_total, 16)


class RaiseTests(SynchronousTestCase):
    """
    L{raise_descriptor_limit}.
    """

    def test_soft_raised_to_hard(self) -> None:
        """
        The soft limit goes up to the hard one; the call says what it was and what it is.
        """
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        lowered = min(soft, 256)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        before, after = raise_descriptor_limit()
        self.assertEqual(before, lowered)
        self.assertEqual(resource.getrlimit(resource.RLIMIT_NOFILE)[0], after)
        if hard != resource.RLIM_INFINITY:
            self.assertEqual(after, hard)
