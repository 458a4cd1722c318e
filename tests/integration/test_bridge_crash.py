"""Bridge durability: kill -9 of the local petreld at random moments while
a numbered QoS 1 (and a QoS 2) stream is published into it and forwarded
over a bridge to a second petreld; 5 rounds each, restarting the local
broker on its store every time.  At the end the remote's persistent
subscriber must have every number the local broker acknowledged: QoS 1 at
least once, QoS 2 exactly once (and no number twice at all).  The same the
other way (in): a stream published on the remote, the local broker killed
while it comes in, the local subscriber gets everything the remote took.

The random seed is printed (PETREL_TEST_SEED replays one)."""

import collections
import os
import random
import signal
import sys
import threading
import time
import unittest

from bridge_helpers import bridged_to_remote, collect_numbers, persistent_sub
from harness import PipelinedPublisher

ROUNDS = int(os.environ.get("BRIDGE_ROUNDS", "5"))
STREAM = 10 ** 6  # more than can be published before the kill
SEED = int(os.environ.get('PETREL_TEST_SEED') or random.randrange(1 << 30))


def restart_until_bridged(broker, name):
    """kill -9 and restart on the store, then wait (20 s at most) until
    the bridge `name` has connected again."""
    broker.crash_restart()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and \
            'bridge %s: connected to' % name not in broker.run_log_text():
        time.sleep(0.05)


class KillDuringForwarding(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        sys.stderr.write('bridge crash test seed %d (PETREL_TEST_SEED to replay)\n' % SEED)
        cls.rng = random.Random(SEED)

    def assert_every_one(self, want, got, qos, way):
        """Every number of `want` is in `got`; at QoS 2 none twice."""
        missing = sorted(want - set(got))
        self.assertEqual(missing, [], '%s, qos %d: %d acknowledged messages lost, e.g. %s' %
                         (way, qos, len(missing), missing[:10]))
        if qos == 2:
            twice = [n for n, k in collections.Counter(got).items() if k > 1]
            self.assertEqual(twice, [], '%s, qos 2: delivered more than once: %s' %
                             (way, twice[:10]))

    def run_rounds(self, qos):
        A, B, b_port = bridged_to_remote(self, 'k', ['out n/# qos=2 remote_prefix=site/'],
                                         client_id='crash-bridge-%d' % qos)
        persistent_sub(b_port, 'crash-sub-%d' % qos, 'site/#', qos)
        acked, offset = [], 0
        for r in range(ROUNDS):
            delay = self.rng.uniform(0.1, 0.5)
            pub = PipelinedPublisher(A.port, 'n/q%d' % qos, qos=qos, window=20)
            killer = threading.Timer(delay, os.kill, (A.pid, signal.SIGKILL))
            killer.start()
            pub.run(STREAM, start=offset)
            killer.join()
            pub.close()
            self.assertTrue(pub.closed, 'round %d: publisher finished before the kill' % r)
            acked += pub.acked
            offset = max(pub.sent) + 1
            sys.stderr.write('qos %d round %d: killed after %.2fs, %d acked, %d sent\n' %
                             (qos, r, delay, len(pub.acked), len(pub.sent)))
            restart_until_bridged(A, 'k')
        want = set(acked)
        t0 = time.monotonic()
        got = collect_numbers(b_port, 'crash-sub-%d' % qos, want)
        if os.environ.get('BRIDGE_DEBUG'):
            sys.stderr.write(A.tail(30) + B.tail(30))
        sys.stderr.write('qos %d: %d acknowledged, %d received at the remote in %.1fs\n' %
                         (qos, len(want), len(got), time.monotonic() - t0))
        self.assert_every_one(want, got, qos, 'out')

    def run_in_rounds(self, qos):
        """The other way: a stream published on the remote comes in over the
        bridge while the local broker is killed and restarted; the local
        persistent subscriber must get every message the remote took."""
        A, B, b_port = bridged_to_remote(self, 'ki', ['in m/# qos=2 local_prefix=in/'],
                                         client_id='crash-in-%d' % qos)
        persistent_sub(A.port, 'crash-in-sub-%d' % qos, 'in/#', qos)
        acked, stop = [], threading.Event()

        def publish():
            pub = PipelinedPublisher(b_port, 'm/q%d' % qos, qos=qos, window=20)
            n = 0
            while not stop.is_set():  # paced: the collector is Python
                pub.run(100, start=n)
                n += 100
                time.sleep(0.02)
            acked.extend(pub.acked)
            pub.close()

        t = threading.Thread(target=publish)
        t.start()
        try:
            for r in range(ROUNDS):
                time.sleep(self.rng.uniform(0.1, 0.5))
                restart_until_bridged(A, 'ki')
        finally:
            stop.set()
            t.join(60)
        want = set(acked)
        got = collect_numbers(A.port, 'crash-in-sub-%d' % qos, want)
        sys.stderr.write('in, qos %d: %d published on the remote, %d received here\n' %
                         (qos, len(want), len(got)))
        self.assert_every_one(want, got, qos, 'in')

    def test_in_qos1_at_least_once(self):
        self.run_in_rounds(1)

    def test_in_qos2_exactly_once(self):
        self.run_in_rounds(2)

    def test_qos1_at_least_once(self):
        self.run_rounds(1)

    def test_qos2_exactly_once(self):
        self.run_rounds(2)


if __name__ == '__main__':
    unittest.main(verbosity=2)
