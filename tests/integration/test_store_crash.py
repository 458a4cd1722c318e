"""Durable store: kill -9 of petreld mid-stream loses no acknowledged message.

A publisher sends numbered QoS 1 (or QoS 2) messages as fast as the broker
acknowledges them (pipelined, 20 in flight) and records every PUBACK
(PUBREC); petreld is SIGKILLed at a random moment while it streams; a new
petreld starts on the same data directory and the persistent subscriber
(clean session 0) reconnects:
- QoS 1: every acknowledged number arrives at least once;
- QoS 2: every number whose PUBREC the publisher got arrives exactly once,
  and nothing comes again on a further connection once the handshakes are
  complete.
Several kill points per run; the random seed is printed (set
PETREL_TEST_SEED to replay one).  The broker is killed and restarted on the
same data directory round after round, so later rounds also start from a
database that was recovered after a crash.

Against mosquitto (PETREL_TEST_BROKER=mosquitto, persistence true) these are
expected to fail: it saves its state only now and then.
"""

import os
import random
import signal
import sys
import threading
import time

import harness
from harness import BrokerTestCase, Collector, PipelinedPublisher

SEED = int(os.environ.get('PETREL_TEST_SEED') or random.SystemRandom().randrange(1 << 30))
ROUNDS = int(os.environ.get('PETREL_CRASH_ROUNDS', '5'))
# Kill after this many acknowledgements (at random in the range) and a
# further random delay: early kills, and kills with a good backlog.
MIN_ACKED, MAX_ACKED = 1, 2500
MAX_DELAY = 0.03
STREAM = 40000   # more than can be published before the kill
# PETREL_CRASH_SIGNAL=TERM stops the broker gracefully instead: a check of
# the test itself (it passes against mosquitto with persistence then).
KILL_SIGNAL = getattr(signal, 'SIG' + os.environ.get('PETREL_CRASH_SIGNAL', 'KILL'))


def killer(broker, pub, target, delay, fired):
    """SIGKILLs the broker once pub has `target` acknowledgements, after
    `delay` seconds, while the publisher keeps streaming."""
    deadline = time.monotonic() + 30
    while len(pub.acked) < target and not pub.closed and time.monotonic() < deadline:
        time.sleep(0.0005)
    time.sleep(delay)
    try:
        os.kill(broker.pid, KILL_SIGNAL)
        fired.append((len(pub.acked), len(pub.sent)))
    except ProcessLookupError:
        pass


class CrashBase(BrokerTestCase):
    settings = {'max_queued_messages': 100000, 'max_inflight': 20}

    @classmethod
    def setUpClass(cls):
        # the killer thread must get the GIL soon after its moment comes
        sys.setswitchinterval(0.0005)
        sys.stderr.write('crash test seed %d (PETREL_TEST_SEED to replay)\n' % SEED)
        cls.rng = random.Random(SEED)
        super().setUpClass()

    def setUp(self):
        super().setUp()
        self.b = self.start_broker(dict(self.settings), persistence=True)

    def collector(self, cid, clean=False):
        c = Collector(self.b.port, cid, clean=clean, keepalive=30)
        self._clients.append(c)
        return c

    def crash_mid_stream(self, topic, qos, label, window=20):
        """Publishes numbered messages until the broker is killed at a
        random point; returns the publisher (acked, sent) after the broker
        was restarted on the same data directory."""
        target = self.rng.randint(MIN_ACKED, MAX_ACKED)
        delay = self.rng.uniform(0, MAX_DELAY)
        pub = PipelinedPublisher(self.b.port, topic, qos=qos, window=window, payload_size=24,
                                 keepalive=30)
        self._clients.append(pub)
        fired = []
        k = threading.Thread(target=killer, args=(self.b, pub, target, delay, fired))
        k.start()
        try:
            pub.run(STREAM)
        finally:
            k.join(40)
        pub.close()
        self.assertTrue(fired, '%s: the broker was not killed' % label)
        self.assertTrue(pub.closed, '%s: the publisher finished before the kill '
                        '(make STREAM larger)' % label)
        sys.stderr.write('%s: killed after %d acks (target %d, +%.3fs), %d sent; '
                         '%d acked in all\n' % (label, fired[0][0], target, delay,
                                                fired[0][1], len(pub.acked)))
        try:
            self.b.proc.wait(15)
        except Exception:
            self.fail('%s: broker still running 15 s after signal %d' % (label, KILL_SIGNAL))
        self.b.crash_restart()
        return pub

    def check_received(self, label, acked, got_numbers, sent):
        missing = sorted(set(acked) - set(got_numbers))
        if missing:
            self.fail('%s: %d acknowledged messages lost after kill -9, e.g. %s '
                      '(%d acked, %d received)' % (label, len(missing), missing[:10],
                                                   len(acked), len(set(got_numbers))))
        unknown = sorted(set(got_numbers) - set(sent))
        if unknown:
            self.fail('%s: received numbers never sent: %s' % (label, unknown[:10]))

    def offline_round(self, r, qos, idle):
        """Round r: a persistent subscriber at QoS `qos` goes offline, a
        publisher streams to it at that QoS until the broker is killed
        (and started again); the subscriber comes back to its session and
        gets everything acknowledged (checked), reading until `idle`
        seconds pass without more.  Returns (label, client id, subscriber,
        the numbers it received)."""
        label = 'qos%d round %d' % (qos, r)
        cid, topic = 'crash-q%d-%d' % (qos, r), self.topic(str(r))
        sub = self.collector(cid)
        sub.subscribe([(topic, qos)])
        sub.disconnect()
        pub = self.crash_mid_stream(topic, qos, label)
        acked = set(pub.acked)
        sub = self.collector(cid)
        self.assertTrue(sub.session_present, '%s: session lost' % label)
        sub.collect(done=lambda s: acked <= set(s.numbers()), idle=idle, timeout=5)
        got = sub.numbers()
        self.check_received(label, pub.acked, got, pub.sent)
        return label, cid, sub, got

    def qos1_offline_rounds(self, rounds):
        for r in range(rounds):
            label, cid, sub, got = self.offline_round(r, 1, 0.3)
            # one publisher, one topic: in order (first copies)
            firsts = list(dict.fromkeys(got))
            self.assertEqual(firsts, sorted(firsts), '%s: out of order' % label)
            self.assertTrue(all(m.qos == 1 for m in sub.messages))
            sub.disconnect()
            # everything acknowledged by the subscriber stays acknowledged
            again = self.collector(cid)
            self.assertEqual(again.collect(idle=0.3), [],
                             '%s: redelivered after PUBACK on a clean reconnect' % label)
            again.disconnect()

    def online_rounds(self, rounds, window, name):
        for r in range(rounds):
            label = 'qos1 %s round %d' % (name, r)
            cid, topic = 'crash-%s-%d' % (name, r), self.topic(str(r))
            sub = self.collector(cid)
            sub.subscribe([(topic, 1)])
            t = threading.Thread(target=sub.collect, kwargs={'timeout': 40, 'idle': 40,
                                                             'done': lambda s: s.closed})
            t.start()
            try:
                pub = self.crash_mid_stream(topic, 1, label, window=window)
            finally:
                t.join(45)
            self.assertTrue(sub.closed, '%s: subscriber connection not closed by the kill' % label)
            first = sub.numbers()
            acked = set(pub.acked)
            sub2 = self.collector(cid)
            self.assertTrue(sub2.session_present, '%s: session lost' % label)
            sub2.collect(done=lambda s: acked <= set(first) | set(s.numbers()), idle=0.3,
                         timeout=5)
            self.check_received(label, pub.acked, first + sub2.numbers(), pub.sent)
            sys.stderr.write('%s: %d received before the kill, %d after\n'
                             % (label, len(first), len(sub2.messages)))
            sub2.disconnect()


class CrashTest(CrashBase):

    def test_qos1_offline_subscriber_kill9(self):
        self.qos1_offline_rounds(ROUNDS)

    def test_qos2_offline_subscriber_kill9_exactly_once(self):
        for r in range(ROUNDS):
            label, cid, sub, got = self.offline_round(r, 2, 0.5)
            dups = sorted(n for n in set(got) if got.count(n) > 1)
            if dups:
                self.fail('%s: %d QoS 2 messages delivered more than once, e.g. %s'
                          % (label, len(dups), dups[:10]))
            self.assertTrue(all(m.qos == 2 for m in sub.messages))
            self.assertEqual(len(sub.pubrels), len(sub.messages),
                             '%s: handshakes not completed' % label)
            self.assertEqual(list(got), sorted(got), '%s: out of order' % label)
            sub.disconnect()
            again = self.collector(cid)
            self.assertTrue(again.session_present)
            self.assertEqual(again.collect(idle=0.4), [],
                             '%s: redelivered after PUBCOMP' % label)
            again.disconnect()

    def test_qos1_online_subscriber_kill9(self):
        """The subscriber is connected during the crash, receiving and
        acknowledging; then reconnects: every number the publisher got a
        PUBACK for arrives at least once across both connections."""
        self.online_rounds(max(2, ROUNDS - 2), window=20, name='online')

class FloodCrashTest(CrashBase):
    """A flood (1000 in flight) into an online subscriber's queue that is
    far smaller: flow control holds the publisher's acknowledgements while
    the broker is killed; whatever was acknowledged arrives."""
    settings = {'max_queued_messages': 200, 'max_inflight': 20}

    def test_qos1_flood_with_flow_control_kill9(self):
        self.online_rounds(max(2, ROUNDS - 2), window=1000, name='flood')


class AckedStateCrashTest(CrashBase):

    def test_suback_and_retained_puback_survive_kill9(self):
        """A SUBACK and the PUBACK of a retained message promise they are
        stored: kill -9 straight after them loses neither."""
        t = self.topic()
        sub = self.collector('crash-suback')
        self.assertEqual(sub.subscribe([(t + '/#', 2)]), [2])
        pub = self.raw(self.b.port)
        pub.connect('', keepalive=20)
        pub.publish(t + '/r', b'retained-before-kill', qos=1, retain=True)
        self.b.crash_restart()
        again = self.collector('crash-suback')
        self.assertTrue(again.session_present, 'session lost although SUBACK was sent')
        # the QoS 2 subscription is there: a new message arrives at QoS 2
        pub = self.raw(self.b.port)
        pub.connect('', keepalive=20)
        pub.publish(t + '/x', b'after', qos=2)
        again.collect(done=lambda s: any(bytes(m.payload) == b'after' for m in s.messages),
                      idle=0.2, timeout=5)
        got = [(m.topic, bytes(m.payload), m.qos) for m in again.messages]
        self.assertIn((t + '/x', b'after', 2), got, 'subscription lost after kill -9')
        self.assertIn((t + '/r', b'retained-before-kill', 1), got,
                      'queued copy of the retained message lost')
        r = self.collector('crash-retained-reader', clean=True)
        r.subscribe([(t + '/r', 1)])
        r.collect(done=lambda s: len(s.messages) >= 1, idle=0.2, timeout=5)
        self.assertEqual([(bytes(m.payload), m.retain) for m in r.messages],
                         [(b'retained-before-kill', True)], 'retained message lost after kill -9')


class PowerCrashTest(CrashBase):
    """durability = power: the same promise (and more) must hold."""
    settings = dict(CrashBase.settings, durability='power')

    def test_qos1_offline_subscriber_kill9(self):
        self.qos1_offline_rounds(2)


if harness.IS_MOSQUITTO:
    del PowerCrashTest


if __name__ == '__main__':
    harness.main()
