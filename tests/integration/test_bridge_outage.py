"""The remote stopped for 30 s while a numbered QoS 1 stream is published
into the local petreld: nothing acknowledged is lost, the order is kept,
and once the remote is back the backlog drains at full speed (the rate is
printed, measured on the bridge's queue in the admin API)."""

import sys
import threading
import time
import unittest

from bridge_helpers import HttpBridgedBroker, bridged_to_remote, collect_numbers, persistent_sub
from harness import PipelinedPublisher

OUTAGE = 30.0
RATE = 500  # messages per second, paced


class RemoteOutage(unittest.TestCase):

    def test_outage_under_load(self):
        A, B, b_port = bridged_to_remote(self, 'o', ['out load/# qos=1'], local=HttpBridgedBroker)
        persistent_sub(b_port, 'outage-sub', 'load/#')
        acked, stop = [], threading.Event()

        def publish():
            pub = PipelinedPublisher(A.port, 'load/n', qos=1, window=20)
            n, t0 = 0, time.monotonic()
            while not stop.is_set():
                pub.run(50, start=n)
                n += 50
                ahead = n / RATE - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            acked.extend(pub.acked)
            pub.close()

        t = threading.Thread(target=publish)
        t.start()
        time.sleep(2)
        B.stop(keep=True)
        down = time.monotonic()
        time.sleep(OUTAGE)
        backlog = A.bridge_status('o')['queued']
        B.start()
        up = time.monotonic()
        drained = None
        while time.monotonic() - up < 60:
            st = A.bridge_status('o')
            if st['state'] == 'connected' and st['queued'] + st['inflight'] < 50:
                drained = time.monotonic() - up
                break
            time.sleep(0.02)
        stop.set()
        t.join(30)
        self.assertIsNotNone(drained, 'the backlog did not drain: %r' % st)
        sys.stderr.write('outage %.1fs: %d queued at the end, drained in %.2fs after the '
                         'remote came back (%.0f msg/s, reconnect delay included)\n' %
                         (up - down, backlog, drained, backlog / max(drained, 1e-3)))
        self.assertGreater(backlog, RATE * OUTAGE * 0.5)
        want = set(acked)
        got = collect_numbers(b_port, 'outage-sub', want, idle=0.5)
        missing = sorted(want - set(got))
        self.assertEqual(missing, [], '%d acknowledged messages lost' % len(missing))
        first = []
        for n in got:
            if not first or n > first[-1]:
                first.append(n)
            elif n not in set(first[-100:]):
                self.fail('out of order: %d after %d' % (n, first[-1]))


if __name__ == '__main__':
    unittest.main(verbosity=2)
