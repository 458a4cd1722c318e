"""Durable store: what a failed commit (a full disk, here a file-size limit
put on the running broker with prlimit) changed in memory is taken back
with it.

A delivery queued by a rolled-back transaction was never acknowledged to
its publisher, who sends it again: it must not stay counted in the
subscriber's queue (a phantom that fills the queue's bound, so that later,
acknowledged messages are refused, and that is looked for in vain when the
session returns).  A message whose row was rolled back must not keep that
row's id: the retained message written again after the recovery must be
stored whole, so that it survives a restart.  An inbound QoS 2 packet id
marked by a rolled-back transaction is taken back, so that the publisher's
resend is stored rather than taken for a duplicate; and acknowledgements
whose deletes were rolled back are done again once the store recovers, so
that those messages are not delivered again after a restart; so are a
subscriber's PUBRECs, so that the restarted broker goes on with PUBREL
rather than a second PUBLISH.  petreld only.
"""

import os
import shutil
import subprocess
import time

import harness
from harness import BrokerTestCase, Collector, numbered
import mqttraw
from mqttraw import PUBACK, PUBCOMP, PUBREC, PUBREL

PRLIMIT = shutil.which('prlimit')
BOUND = 1000         # max_queued_messages of the subscriber
AFTER = 10           # acknowledged messages published after the recovery


def closed_unacknowledged(c, timeout):
    """True if the broker closes c before acknowledging anything on it
    (its transaction failed); False at the first acknowledgement (it did
    not: after a failure the WAL gives its room back, so a few may pass)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            p = c.read_packet(max(0.0, deadline - time.monotonic()))
        except mqttraw.Closed:
            return True
        except mqttraw.Timeout:
            return False
        if p.type in (PUBACK, PUBREC):
            return False


@harness.skip_on_mosquitto('petreld store faults')
class RollbackTest(BrokerTestCase):

    def setUp(self):
        super().setUp()
        if not PRLIMIT:
            self.skipTest('prlimit not installed')

    def set_fsize(self, b, soft):
        r = subprocess.run([PRLIMIT, '--pid', str(b.pid), '--fsize=%s:unlimited' % soft],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            self.skipTest('prlimit --pid failed: %s' % r.stderr.strip())

    def limit_writes(self, b):
        sizes = []
        for suffix in ('', '-wal', '-shm'):
            try:
                sizes.append(os.path.getsize(b.db_path + suffix))
            except OSError:
                pass
        self.set_fsize(b, max(sizes) + 64 * 1024)

    def burst(self, b, topic, first, count, size):
        """Pipelines `count` QoS 1 publishes on a new connection; returns
        the numbers acknowledged before the broker closed it (or all)."""
        c = self.raw_connected(port=b.port)
        data = b''.join(mqttraw.publish_packet(topic, numbered(first + i, size), qos=1,
                                               pid=i + 1) for i in range(count))
        c.send(data)
        acked = []
        deadline = time.monotonic() + 10
        while len(acked) < count and time.monotonic() < deadline:
            try:
                p = c.read_packet(5)
            except (mqttraw.Closed, mqttraw.Timeout):
                break
            if p.type == PUBACK:
                acked.append(first + p.pid - 1)
        c.close()
        return acked

    def fail_writes(self, b, topic, min_unacked):
        """Publishes under the limit until at least min_unacked publishes
        were not acknowledged; returns (acknowledged numbers, next number)."""
        acked, n, unacked = [], 0, 0
        for _ in range(200):
            got = self.burst(b, topic, n, 100, 200)
            acked += got
            unacked += 100 - len(got)
            n += 100
            if unacked >= min_unacked:
                return acked, n
        self.fail('writes kept succeeding under the file-size limit (%d acknowledged)'
                  % len(acked))

    def stored_subscriber(self, b, client_id, topics):
        """A persistent session subscribed to `topics`, left offline."""
        sub = Collector(b.port, client_id)
        self._clients.append(sub)
        sub.subscribe(topics)
        sub.disconnect()

    def recover(self, b, topic, n):
        """Lifts the limit and publishes (to topic, which must have a stored
        subscriber) until the store takes writes again."""
        self.set_fsize(b, 'unlimited')
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            # to the subscriber's topic: a write, whose commit recovers
            if self.burst(b, topic, n, 1, 10):
                self.assertTrue(b.wait_log(r'store recovered', 5), b.tail())
                return
            time.sleep(0.2)
        self.fail('no publish acknowledged within 15 s of lifting the limit\n' + b.tail())

    def test_rolled_back_deliveries_leave_no_phantoms(self):
        b = self.start_broker({'max_queued_messages': BOUND, 'max_queued_bytes': 0},
                              log_pipe=True)
        t = self.topic()
        sub = Collector(b.port, 'rb-sub')
        self._clients.append(sub)
        sub.subscribe([(t, 1)])
        sub.disconnect()

        self.limit_writes(b)
        acked, n = self.fail_writes(b, t, 2 * BOUND)
        self.assertLess(len(acked) + AFTER, BOUND,
                        'too many publishes acknowledged under the limit for this test')
        self.recover(b, t, n)
        later = list(range(n + 1000, n + 1000 + AFTER))
        c = self.raw_connected(port=b.port)
        for m in later:
            c.publish(t, numbered(m, 200), qos=1)
        acked += later

        sub = Collector(b.port, 'rb-sub')
        self._clients.append(sub)
        self.assertTrue(sub.session_present)
        want = set(acked)
        sub.collect(done=lambda s: want <= set(s.numbers()), idle=0.5, timeout=10)
        got = set(sub.numbers())
        missing = sorted(want - got)
        self.assertFalse(missing, '%d of %d acknowledged messages not delivered (of the %d '
                         'published after the recovery: %d), e.g. %s\n%s'
                         % (len(missing), len(want), AFTER, len(set(later) - got),
                            missing[:10], b.tail()))
        log = b.log_text()
        self.assertNotIn('expected in the store, none found', log)
        self.assertNotIn('queue of an offline session full', log)

    def test_retained_message_written_again_is_stored_whole(self):
        b = self.start_broker(log_pipe=True)
        t = self.topic()
        self.stored_subscriber(b, 'rb-fill', [(t + '/fill', 1)])
        self.limit_writes(b)
        acked, n = self.fail_writes(b, t + '/fill', 50)
        # In one turn, so in one transaction with publishes that cannot be
        # stored: the retained message lives in memory, and is written
        # again once the store recovers.
        for attempt in range(20):
            c = self.raw_connected(port=b.port)
            c.send(b''.join(mqttraw.publish_packet(t + '/fill', numbered(n + i, 200), qos=1,
                                                   pid=i + 1) for i in range(50)) +
                   mqttraw.publish_packet(t + '/r', b'kept across the failure', retain=True))
            n += 50
            if closed_unacknowledged(c, 5):
                break
            c.close()
        else:
            self.fail('writes kept succeeding under the file-size limit')
        self.recover(b, t + '/fill', n)
        time.sleep(1.5)  # the rewrite runs from a timer, 1 s after a failure
        b.restart()
        r = self.raw_connected(port=b.port)
        r.subscribe([(t + '/r', 0)])
        p = r.expect_publish(timeout=3)
        self.assertEqual((p.topic, p.payload), (t + '/r', b'kept across the failure'))


    def failing_turn(self, b, c, after, topic, n):
        """Sends a large QoS 1 PUBLISH to `topic` (which has a stored
        subscriber) and `after` (packets) on connection c in one write: the
        broker reads the large one over several turns, and the tail with
        `after` in one, so they share a transaction, which the file-size
        limit makes fail: the broker closes c without any acknowledgement.
        Returns False if it was acknowledged after all."""
        c.send(mqttraw.publish_packet(topic, numbered(n, 300000), qos=1, pid=999) + after)
        return closed_unacknowledged(c, 10)

    def test_qos2_id_of_a_rolled_back_publish_is_taken_back(self):
        b = self.start_broker(log_pipe=True)
        t = self.topic()
        self.stored_subscriber(b, 'q2-sub', [(t + '/q2', 2), (t + '/fill', 1)])
        pub = self.raw(b.port)
        pub.connect('q2-pub', clean=False)
        self.limit_writes(b)
        acked, n = self.fail_writes(b, t + '/fill', 50)
        # The QoS 2 PUBLISH is in the failing transaction: no PUBREC.
        payload = b'exactly once across a failed commit'
        ok = self.failing_turn(b, pub, mqttraw.publish_packet(t + '/q2', payload, qos=2, pid=7),
                               t + '/fill', n + 1)
        pub.close()
        self.assertTrue(ok, 'the QoS 2 publish was acknowledged under the limit')
        self.recover(b, t + '/fill', n + 2)
        # The client resends what was not acknowledged, as it must.
        pub = self.raw(b.port)
        ack = pub.connect('q2-pub', clean=False)
        self.assertTrue(ack.session_present)
        pub.send(mqttraw.publish_packet(t + '/q2', payload, qos=2, pid=7, dup=True))
        self.assertEqual(pub.expect(PUBREC, 5).pid, 7)
        pub.send(mqttraw.ack_packet(PUBREL, 7))
        self.assertEqual(pub.expect(PUBCOMP, 5).pid, 7)
        pub.disconnect()
        got = []
        r = self.raw(b.port)
        r.connect('q2-sub', clean=False)
        try:
            while True:
                p = r.expect_publish(timeout=2)
                if p.topic == t + '/q2':
                    got.append(p.payload)
        except mqttraw.Timeout:
            pass
        self.assertEqual(got, [payload], 'the resent QoS 2 message was %s\n%s'
                         % ('lost (taken for a duplicate)' if not got else 'delivered %d times'
                            % len(got), b.tail()))

    def acks_rolled_back(self, b, qos, ack_type):
        """A persistent subscriber gets five messages at `qos` and answers
        them with `ack_type` packets in a turn whose transaction fails; the
        store recovers, its rewrite runs, and the broker is restarted.
        Returns (the subscriber reconnected, the five packet ids)."""
        t = self.topic()
        self.stored_subscriber(b, 'ack-fill', [(t + '/fill', 1)])
        sub = self.raw(b.port)
        sub.connect('ack-sub', clean=False)
        sub.subscribe([(t + '/a', qos)])
        c = self.raw_connected(port=b.port)
        for i in range(5):
            c.publish(t + '/a', numbered(i, 10), qos=qos)
        c.disconnect()
        pids = [sub.expect_publish(timeout=5, ack=False).pid for _ in range(5)]
        self.limit_writes(b)
        acked, n = self.fail_writes(b, t + '/fill', 50)
        # The acknowledgements share a transaction that fails.
        ok = self.failing_turn(b, sub, b''.join(mqttraw.ack_packet(ack_type, p) for p in pids),
                               t + '/fill', n + 1)
        sub.close()
        self.assertTrue(ok, 'the publish was acknowledged under the limit')
        self.recover(b, t + '/fill', n + 2)
        time.sleep(1.5)  # the rewrite runs from a timer, 1 s after a failure
        b.restart()
        r = self.raw(b.port)
        ack = r.connect('ack-sub', clean=False)
        self.assertTrue(ack.session_present)
        return r, pids

    def packets_until_quiet(self, r):
        got = []
        try:
            while True:
                got.append(r.read_packet(2))
        except mqttraw.Timeout:
            pass
        return got

    def test_rolled_back_acknowledgements_are_done_again(self):
        b = self.start_broker(log_pipe=True)
        r, _ = self.acks_rolled_back(b, 1, PUBACK)
        again = [p.payload for p in self.packets_until_quiet(r)]
        self.assertEqual(again, [], '%d acknowledged messages delivered again after the '
                         'restart\n%s' % (len(again), b.tail()))

    def test_rolled_back_pubrecs_are_done_again(self):
        """A subscriber's PUBRECs whose state update was rolled back are
        written again once the store recovers: after a restart the broker
        goes on with PUBREL, not with the PUBLISH the client has already
        taken (which it would deliver twice)."""
        b = self.start_broker(log_pipe=True)
        r, pids = self.acks_rolled_back(b, 2, PUBREC)
        got = [(p.type, p.pid) for p in self.packets_until_quiet(r)]
        self.assertEqual(sorted(got), sorted((PUBREL, p) for p in pids),
                         'after the restart (PUBLISH = 3, PUBREL = 6)\n' + b.tail())

if __name__ == '__main__':
    harness.main()
