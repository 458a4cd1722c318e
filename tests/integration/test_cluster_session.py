"""Sessions cluster-wide: with cluster_nats set, a client id is one session
across all nodes (its record in a JetStream KV bucket; its queue handed over
by the node that held it).

A three-server NATS cluster with JetStream and three petreld nodes (as in
test_cluster_js).  Checked:
  1. takeover with queued messages (Paho 3.1.1, and Paho 5.0): a persistent
     session on n1, offline, 100 QoS 1 and 100 QoS 2 messages published on
     n2 queued for it on n1; it connects to n3: session present, every
     QoS 1 number at least once, every QoS 2 number exactly once, and its
     subscription moved (a message published on n1 afterwards reaches it);
  2. the old connection ends: a 5.0 client on n1 hears DISCONNECT 0x8E
     (session taken over) when its client id connects to n2;
  3. takeover while a QoS 2 stream flows (500 msg/s for 4 s; the client
     leaves n1 with 0.1 s of messages unanswered, in flight): what it got
     on n1 and then on n3 is every number exactly once;
  4. owner down: the session's node killed (-9), the client connects to
     another node: session present from the replicated record, its
     subscription in force; the node's queue arrives once it is back;
  5. a clean session on one node ends the session everywhere;
  6. the record follows SUBSCRIBE and UNSUBSCRIBE on the node that took the
     session over (checked on a third node after the second one is killed);
  7. a client's node killed under it: the node that starts its session from
     the record publishes its will, once.
Exact counts are printed.  Each check that does not depend on an earlier one
is a subTest, so that a run shows every part that fails."""

import collections
import contextlib
import os
import queue
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqttraw  # noqa: E402
from nats_helpers import ClusterNodes, cluster_test, NatsCluster  # noqa: E402
from test_sub_options import Paho5  # noqa: E402  (Paho in MQTT 5.0 mode)

STREAM_LINE = 'cluster: JetStream stream'
SESSIONS_LINE = 'cluster: sessions'
# Between a change of a session (SUBSCRIBE, UNSUBSCRIBE, a clean session)
# and what depends on the change on another node, or a kill -9 of the node
# where it happened: the record is replicated through JetStream, which may
# take the node a moment after its answer to the client.
SETTLE = 1.0
SESSION_EXPIRY = 600  # MQTT 5.0 clients: a persistent session


def report(what, **counts):
    sys.stderr.write('  %s: %s\n' % (what, ', '.join('%s %s' % kv for kv in counts.items())))


def drain(client, done, timeout, idle=1.0):
    """The messages of a Paho client (harness.PahoClient or Paho5) until
    done(list of messages) holds and `idle` seconds more have passed (for
    late copies), or `timeout` seconds in all."""
    got = []
    deadline = time.monotonic() + timeout
    finish = None
    while True:
        now = time.monotonic()
        if finish is None and done(got):
            finish = now + idle
        end = finish if finish is not None else deadline
        if now >= end:
            return got
        try:
            got.append(client.messages.get(timeout=min(0.2, end - now)))
        except queue.Empty:
            pass


def numbers_on(messages, topic):
    return [harness.number_of(m.payload) for m in messages if m.topic == topic]


@cluster_test
class ClusterSessions(ClusterNodes, harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.nats = NatsCluster().start()
        cls.start_nodes(lambda i: cls.nats.urls, cls.wait_stream, cluster_stream_replicas=3)
        # The session directory's line: on every node soon after the stream's
        # (a node without it fails test_0; the others still run).
        deadline = time.monotonic() + 15
        while not all(SESSIONS_LINE in b.run_log_text() for b in cls.nodes) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        cls.sessions_logged = any(SESSIONS_LINE in b.run_log_text() for b in cls.nodes)
        cls.wait_crossing()

    @classmethod
    def wait_stream(cls, b):
        deadline = time.monotonic() + 30
        while STREAM_LINE not in b.run_log_text():
            if time.monotonic() > deadline:
                raise AssertionError('no JetStream stream on %s:\n%s' % (b.settings['node_name'],
                                                                         b.tail()))
            time.sleep(0.05)

    @classmethod
    def wait_crossing(cls, timeout=60.0):
        """Until a QoS 1 message published on each node has reached a
        subscriber on each other node: the stream and every node's consumer
        have their leaders."""
        subs = [harness.PahoClient(b.port, 'sess-warm-%d' % i) for i, b in enumerate(cls.nodes)]
        deadline = time.monotonic() + timeout
        try:
            for s in subs:
                s.connect()
                s.subscribe('sess-warm/#', qos=1)
            for i, b in enumerate(cls.nodes):
                topic = 'sess-warm/%d' % i
                heard = {i}
                while len(heard) < len(subs):
                    if time.monotonic() > deadline:
                        raise AssertionError('QoS 1 from %s reaches only %s'
                                             % (b.settings['node_name'], sorted(heard)))
                    p = mqttraw.RawClient(b.port)
                    p.connect('')
                    p.publish(topic, b'warm', qos=1)
                    p.disconnect()
                    until = time.monotonic() + 1.0
                    while len(heard) < len(subs) and time.monotonic() < until:
                        for j, s in enumerate(subs):
                            while not s.messages.empty():
                                if s.messages.get().topic == topic:
                                    heard.add(j)
                        time.sleep(0.02)
        finally:
            for s in subs:
                s.close()

    def rejoin(self, b):
        """Starts node b again (after a kill) and waits until it is a
        cluster node again."""
        b.start()
        self.wait_stream(b)
        if self.sessions_logged:
            self.assertTrue(b.wait_log(SESSIONS_LINE, timeout=15), b.tail())

    def publish(self, node, topic, start, count, qos=1):
        """count numbered messages from start on topic, on node; returns
        the set of numbers (all acknowledged)."""
        p = harness.PipelinedPublisher(node.port, topic, qos=qos, window=20)
        try:
            p.run(count, start=start)
        finally:
            p.close()
        self.assertEqual(len(p.acked), count, 'not all acknowledged on %s' % topic)
        return set(p.acked)

    @contextlib.contextmanager
    def answered(self, what):
        """A node that does not answer (no CONNACK within mqttraw's 5 s, or
        a close) fails the test instead of erroring it."""
        try:
            yield
        except mqttraw.Timeout:
            self.fail('%s: no answer within %.0f s' % (what, mqttraw.DEFAULT_TIMEOUT))
        except mqttraw.Closed:
            self.fail('%s: connection closed' % what)

    def collector(self, node, cid, **kw):
        with self.answered('%s connecting to %s' % (cid, node.settings['node_name'])):
            c = harness.Collector(node.port, cid, **kw)
        self._clients.append(c)
        return c

    def raw5(self, node):
        c = mqttraw.Raw5(node.port)
        self._clients.append(c)
        return c

    def listen(self, c, seconds):
        """What Collector c receives until nothing came for `seconds`."""
        return c.collect(done=lambda s: False, timeout=seconds)

    def reached(self, node, cid, topic_filter, want):
        """A subscriber on node, online, that takes
        in the numbers `want` at topic_filter: they reached that node (and
        the queues of its offline sessions).  Returns a function to call
        after publishing; it asserts they all came."""
        w = self.collector(node, cid, clean=True)
        w.subscribe([(topic_filter, 2)])

        def check():
            w.collect(done=lambda s: want() <= set(s.numbers()), idle=0.3, timeout=15)
            w.disconnect()
            self.assertEqual(want() - set(w.numbers()), set(),
                             'published but not on %s' % node.settings['node_name'])
            time.sleep(0.3)  # what routed them there has queued them too
        return check

    # ---- tests
    def test_0_session_directory_ready_on_every_node(self):
        for b in self.nodes:
            with self.subTest(node=b.settings['node_name']):
                self.assertTrue(SESSIONS_LINE in b.run_log_text(),
                                'no "%s" line in the log' % SESSIONS_LINE)

    def takeover_with_queue(self, cid, connect):
        """Test 1 with the client `connect(node)` makes (connected, its
        session present returned by .sp)."""
        n1, n2, n3 = self.nodes
        base = cid
        c = connect(n1)
        c.sub(base + '/#', 2)
        c.close()
        q1, q2 = set(range(100)), set(range(1000, 1100))
        sent = set()
        witness = self.reached(n1, cid + '-witness', base + '/#', lambda: sent)
        sent |= self.publish(n2, base + '/q1', 0, 100, qos=1)
        sent |= self.publish(n2, base + '/q2', 1000, 100, qos=2)
        witness()

        c = connect(n3)
        with self.subTest('session present on n3'):
            self.assertEqual(c.sp, 1)
        got = drain(c, lambda g: q1 | q2 <= {harness.number_of(m.payload) for m in g},
                    timeout=20, idle=1.5)
        n_q1, n_q2 = numbers_on(got, base + '/q1'), numbers_on(got, base + '/q2')
        twice = sorted(k for k, v in collections.Counter(n_q2).items() if v > 1)
        report('%s takeover n1 -> n3' % cid, session_present=c.sp, queued=len(sent),
               qos1_received=len(n_q1), qos1_missing=len(q1 - set(n_q1)),
               qos2_received=len(n_q2), qos2_missing=len(q2 - set(n_q2)), qos2_twice=len(twice))
        with self.subTest('QoS 1 at least once'):
            self.assertEqual(sorted(q1 - set(n_q1)), [], 'QoS 1 numbers missing')
        with self.subTest('QoS 2 exactly once'):
            self.assertEqual(sorted(q2 - set(n_q2)), [], 'QoS 2 numbers missing')
            self.assertEqual(twice, [], 'QoS 2 numbers twice')
        with self.subTest('at the QoS subscribed'):
            self.assertEqual({m.qos for m in got if m.topic == base + '/q2'} - {2}, set())
        with self.subTest('the subscription moved to n3'):
            self.publish(n1, base + '/after', 5000, 1, qos=1)
            after = drain(c, lambda g: 5000 in numbers_on(g, base + '/after'), timeout=10,
                          idle=0)
            self.assertIn(5000, numbers_on(after, base + '/after'),
                          'published on n1 after the takeover, not received on n3')
        c.close()

    def test_1_takeover_with_queued_messages_311(self):
        def connect(node):
            c = self.paho('roam', port=node.port, clean_session=False)
            c.sp = c.connect()
            c.sub = lambda f, q: c.subscribe(f, qos=q)
            return c
        self.takeover_with_queue('roam', connect)

    def test_1_takeover_with_queued_messages_50(self):
        def connect(node):
            c = Paho5(node.port, 'roam5', clean_start=False, session_expiry=SESSION_EXPIRY)
            self._clients.append(c)
            c.sp = c.connect()
            c.sub = lambda f, q: c.subscribe([(f, q, {})])
            return c
        self.takeover_with_queue('roam5', connect)

    def test_2_old_connection_ended_with_0x8e(self):
        n1, n2 = self.nodes[0], self.nodes[1]
        props = [(mqttraw.P_SESSION_EXPIRY, SESSION_EXPIRY)]
        old, new = self.raw5(n1), self.raw5(n2)
        with self.answered('kick connecting to n1'):
            old.connect5('kick', clean=False, props=props)
        with self.answered('kick connecting to n2'):
            ack = new.connect5('kick', clean=False, props=props)
        with self.subTest('session present on n2'):
            self.assertTrue(ack.session_present, 'CONNACK on n2 without session present')
        with self.subTest('DISCONNECT 0x8E on n1'):
            try:
                p = old.read5(timeout=10)
            except mqttraw.Timeout:
                self.fail('the n1 connection is still open 10 s after the takeover')
            except mqttraw.Closed:
                self.fail('the n1 connection closed without DISCONNECT')
            self.assertEqual((p.type, p.rc), (mqttraw.DISCONNECT, 0x8E), p)
            report('kick', session_present=int(ack.session_present),
                   old_connection='DISCONNECT 0x%02x' % p.rc)

    def test_3_takeover_while_qos2_flows(self):
        n1, n2, n3 = self.nodes
        rate, seconds, chunk = 500, 4.0, 10
        total = int(rate * seconds)
        first = self.collector(n1, 'flow', clean=False, keepalive=120)
        first.subscribe([('flow/#', 2)])
        pub = harness.PipelinedPublisher(n2.port, 'flow/x', qos=2, window=chunk)
        self._clients.append(pub)

        def paced():
            t0 = time.monotonic()
            for k in range(0, total, chunk):
                pause = t0 + k / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                pub.run(chunk, start=k, stall_timeout=20)
        t = threading.Thread(target=paced)
        t.start()
        # Half way, the client stops acknowledging for 0.1 s and then leaves:
        # what n1 sent it meanwhile is in flight, for n3 to send again.
        switch = time.monotonic() + seconds / 2
        while time.monotonic() < switch + 0.1:  # (handshakes open: that is the point)
            if first.ack and time.monotonic() >= switch:
                first.ack = False
                acked_on_n1 = len(first.messages)
            try:
                first._handle(first.client.read_packet(0.05))
            except mqttraw.Timeout:
                pass
        first.disconnect()
        unacked_on_n1 = first.messages[acked_on_n1:]
        del first.messages[acked_on_n1:]  # not taken: the client never answered them
        open_on_n1 = {m.pid: harness.number_of(m.payload) for m in first.messages
                      if m.pid in first.awaiting_rel}
        second = self.collector(n3, 'flow', clean=False, keepalive=120)
        second.collect(done=lambda s: not t.is_alive() and
                       set(pub.acked) <= set(first.numbers()) | set(s.numbers()),
                       idle=1.5, timeout=10)
        t.join(30)
        self.assertFalse(t.is_alive(), 'publisher stuck')
        self.assertEqual(len(pub.acked), total, 'not every message acknowledged on n2')
        # A PUBLISH resent on n3 whose PUBREC was sent on n1 (the PUBREL
        # not received yet) is the same message: a receiver keeps the packet
        # id until the PUBREL.
        got, resent = first.numbers(), 0
        for m in second.messages:
            if m.qos == 2 and open_on_n1.get(m.pid) == harness.number_of(m.payload):
                del open_on_n1[m.pid]
                resent += 1
            else:
                got.append(harness.number_of(m.payload))
        counts = collections.Counter(got)
        missing = sorted(set(range(total)) - set(counts))
        twice = sorted(k for k, v in counts.items() if v > 1)
        report('flow takeover n1 -> n3', published=total, on_n1=len(first.messages),
               unanswered_on_n1=len(unacked_on_n1),
               on_n3=len(second.messages), resent_open_handshakes=resent,
               session_present=int(second.session_present), missing=len(missing),
               twice=len(twice))
        with self.subTest('session present on n3'):
            self.assertTrue(second.session_present)
        with self.subTest('no loss'):
            self.assertEqual(missing[:20], [], '%d numbers missing' % len(missing))
        with self.subTest('no duplicate'):
            self.assertEqual(twice[:20], [], '%d numbers twice' % len(twice))

    def test_4_owner_node_down(self):
        n1, n2, n3 = self.nodes
        c = self.collector(n1, 'orphan', clean=False)
        c.subscribe([('orph/#', 1)])
        c.disconnect()
        sent = set()
        witness = self.reached(n1, 'orphan-witness', 'orph/#', lambda: sent)
        sent |= self.publish(n2, 'orph/q', 0, 20, qos=1)
        witness()
        time.sleep(SETTLE)
        n1.kill()
        try:
            c = self.collector(n2, 'orphan', clean=False, keepalive=300)
            with self.subTest('session present on n2 with n1 down'):
                self.assertTrue(c.session_present)
            self.publish(n3, 'orph/after', 100, 1, qos=1)
            c.collect(done=lambda s: 100 in s.numbers(), idle=0, timeout=10)
            with self.subTest('its subscription in force on n2'):
                self.assertIn(100, c.numbers(), 'published on n3, not received on n2')
            before = len(set(c.numbers()) & sent)
            self.rejoin(n1)
        finally:
            if not n1.alive():
                self.rejoin(n1)
        c.collect(done=lambda s: sent <= set(s.numbers()), idle=0.5, timeout=30)
        c.disconnect()
        missing = sorted(sent - set(c.numbers()))
        report('orphan', queued_on_n1=len(sent), before_n1_back=before,
               received=len(set(c.numbers()) & sent), missing=len(missing),
               session_present=int(c.session_present))
        with self.subTest("n1's queue handed over when it came back"):
            self.assertEqual(missing, [], 'queued on n1, not received on n2')

    def test_5_clean_session_ends_it_everywhere(self):
        n1, n2, n3 = self.nodes
        c = self.collector(n1, 'gone', clean=False)
        c.subscribe([('gone/#', 1)])
        c.disconnect()
        old = self.publish(n1, 'gone/q', 0, 5, qos=1)
        c = self.collector(n2, 'gone', clean=True)
        with self.subTest('clean session: session present 0'):
            self.assertFalse(c.session_present)
        c.disconnect()
        time.sleep(SETTLE)
        c = self.collector(n3, 'gone', clean=False)
        on_n3 = list(self.listen(c, 2.0))
        c.disconnect()
        with self.subTest('n3: no session'):
            self.assertFalse(c.session_present)
            self.assertEqual(len(on_n3), 0, 'the old queue on n3: %r' % on_n3[:5])
        time.sleep(SETTLE)
        # On the node that held it: neither the queue nor the subscription.
        c = self.collector(n1, 'gone', clean=False)
        sp_n1 = c.session_present
        self.listen(c, 2.0)
        self.publish(n1, 'gone/new', 10, 1, qos=1)
        self.listen(c, 2.0)
        c.disconnect()
        report('gone', queued=len(old), on_n3=len(on_n3), session_present_n1=int(sp_n1),
               old_on_n1=len(set(c.numbers()) & old), new_on_n1=c.numbers().count(10))
        with self.subTest('n1: the old session ended there too'):
            self.assertEqual(sorted(set(c.numbers()) & old), [], 'the old queue on n1')
            self.assertNotIn(10, c.numbers(), 'the old subscription on n1')

    def test_7_will_from_the_record(self):
        """A client's node killed under it: nobody published its will; the
        node that starts its session from the record does, once."""
        n1, n2, n3 = self.nodes
        watcher = self.collector(n3, 'wrec-watch', clean=True)
        watcher.subscribe([('wrec/#', 1)])
        c = mqttraw.RawClient(n1.port)
        with self.answered('willer connecting to n1'):
            c.connect('willer', clean=False, keepalive=60,
                      will=('wrec/gone', b'willer-gone', 1, False))
        c.subscribe([('wrec-own/#', 1)])
        time.sleep(SETTLE)  # the record, will included, is written at bind
        n1.kill()
        try:
            c.close()
            early = [m.payload for m in self.listen(watcher, 1.0)]
            back = self.collector(n2, 'willer', clean=False)
            with self.subTest('session present on n2 from the record'):
                self.assertTrue(back.session_present)
            watcher.collect(done=lambda w: any(m.payload == b'willer-gone' for m in w.messages),
                            idle=0, timeout=10)
            self.rejoin(n1)
        finally:
            if not n1.alive():
                self.rejoin(n1)
        self.listen(watcher, 2.0)  # a second copy would come now
        wills = [m for m in watcher.messages if m.payload == b'willer-gone']
        back.disconnect()
        report('willer', before_takeover=len(early), wills=len(wills),
               session_present=int(back.session_present))
        with self.subTest('the will published once, by the node that took the session'):
            self.assertEqual(early, [], 'a will before anyone took the session')
            self.assertEqual(len(wills), 1, 'wills received on n3: %d' % len(wills))

    def test_6_subscriptions_follow_the_session(self):
        n1, n2, n3 = self.nodes
        c = self.collector(n1, 'subs', clean=False)
        c.subscribe([('subs/a/1', 1)])
        c.disconnect()
        c = self.collector(n2, 'subs', clean=False)
        with self.subTest('takeover on n2: session present'):
            self.assertTrue(c.session_present)
        c.subscribe([('subs/a/2', 1)])
        c.client.unsubscribe(['subs/a/1'])
        c.disconnect()
        time.sleep(SETTLE)
        n2.kill()
        try:
            c = self.collector(n3, 'subs', clean=False)
            # a/1 first: had it been subscribed, it would come before a/2
            self.publish(n1, 'subs/a/1', 1, 1, qos=1)
            self.publish(n1, 'subs/a/2', 2, 1, qos=1)
            c.collect(done=lambda s: 2 in s.numbers(), idle=1.5, timeout=10)
            c.disconnect()
            report('subs', session_present_n3=int(c.session_present),
                   a1=c.numbers().count(1), a2=c.numbers().count(2))
            with self.subTest('n3 with n2 down: session present'):
                self.assertTrue(c.session_present)
            with self.subTest('SUBSCRIBE on n2 in the record'):
                self.assertIn(2, c.numbers(), 'subs/a/2 not received on n3')
            with self.subTest('UNSUBSCRIBE on n2 in the record'):
                self.assertNotIn(1, c.numbers(), 'subs/a/1 received on n3')
        finally:
            self.rejoin(n2)


if __name__ == '__main__':
    harness.main()
