"""Shared subscriptions across cluster nodes (broker/cluster_share.c).

One nats-server with JetStream on a free loopback port and three petreld
nodes.  A group "$share/g/sh/+" has a member on n1 and one on n2; n3 has an
ordinary subscriber to sh/+.  N messages at QoS 0, N at QoS 1 and N at
QoS 2 are published on each node.  Checked: each message reaches exactly one member
of the group in total (no copy twice, none missing), both members get
some of each QoS, and the ordinary subscriber gets every message.  And
at least once across a kill: persistent members of a group on n1 and n2,
a numbered QoS 1 stream published on n3, n2 killed (-9) in the middle and
restarted: every acknowledged message reaches a member.  Exact counts
are printed."""

import collections
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from nats_helpers import ClusterNodes, cluster_test, NatsServer  # noqa: E402

N = 100


@cluster_test
class ClusterShare(ClusterNodes, harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.nats = NatsServer().start()
        cls.start_nodes(lambda i: cls.nats.url,
                        lambda b: b.wait_log('cluster: JetStream stream', timeout=30))

    def drain(self, clients, idle=1.0, timeout=30.0, done=None):
        """Reads every client's messages until `done` (or `idle` seconds
        without any, or timeout); returns {client index: [payloads]}."""
        got = collections.defaultdict(list)
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            if done and done(got):
                break
            moved = False
            for i, c in enumerate(clients):
                while not c.messages.empty():
                    got[i].append(c.messages.get().payload.decode())
                    moved = True
            if moved:
                last = time.monotonic()
            elif time.monotonic() - last > idle:
                break
            time.sleep(0.01)
        return got

    def test_each_message_once_in_the_group(self):
        n1, n2, n3 = self.nodes
        members = [harness.PahoClient(n1.port, 'share-m1'), harness.PahoClient(n2.port, 'share-m2')]
        plain = harness.PahoClient(n3.port, 'share-plain')
        pubs = [harness.PahoClient(b.port, 'share-pub-%d' % i) for i, b in enumerate(self.nodes)]
        everyone = members + [plain] + pubs
        try:
            for c in everyone:
                c.connect()
            for m in members:
                m.subscribe('$share/g/sh/+', qos=2)
            plain.subscribe('sh/+', qos=2)
            # Until a marker of each QoS from each node reaches the group
            # and the plain subscriber: the NATS subscriptions and the
            # group's consumer are in force everywhere.
            deadline = time.monotonic() + 30
            for qos in (0, 1):
                for i, p in enumerate(pubs):
                    while True:
                        self.assertLess(time.monotonic(), deadline, 'no route for markers')
                        p.publish('sh/marker', b'marker', qos=qos)
                        got = self.drain(members + [plain], idle=0.3, timeout=2.0,
                                         done=lambda g: (g[0] or g[1]) and g[2])
                        if (got[0] or got[1]) and got[2]:
                            break
            time.sleep(0.5)
            self.drain(members + [plain], idle=1.0)

            sent = []
            for qos in (0, 1, 2):
                for i, p in enumerate(pubs):
                    for k in range(N):
                        body = 'q%d-n%d-%d' % (qos, i + 1, k)
                        p.publish('sh/x', body.encode(), qos=qos)
                        sent.append(body)
            want = len(sent)
            got = self.drain(members + [plain], idle=2.0, timeout=60.0,
                             done=lambda g: len(g[2]) >= want and len(g[0]) + len(g[1]) >= want)
            time.sleep(1.0)  # copies delivered twice would come now
            late = self.drain(members + [plain], idle=0.5, timeout=5.0)
            for i in range(3):
                got[i] += late[i]
            group = got[0] + got[1]
            counts = collections.Counter(group)
            twice = sorted(b for b, c in counts.items() if c > 1)
            missing = sorted(set(sent) - set(group))
            per = {'m%d q%d' % (i + 1, q): sum(1 for b in got[i] if b.startswith('q%d-' % q))
                   for i in (0, 1) for q in (0, 1, 2)}
            sys.stderr.write('  group: %d of %d received, %d twice, %d missing; %s; '
                             'plain subscriber %d\n' % (len(group), want, len(twice),
                                                        len(missing), per, len(got[2])))
            self.assertEqual(twice, [], 'delivered twice within the group')
            self.assertEqual(missing, [], 'missing in the group')
            self.assertEqual(len(group), want)
            for k, v in per.items():
                self.assertGreater(v, 0, '%s got none: %s' % (k, per))
            self.assertEqual(sorted(got[2]), sorted(sent), 'the plain subscriber')
        finally:
            for c in everyone:
                c.close()

    def test_at_least_once_across_a_member_node_kill(self):
        n1, n2, n3 = self.nodes
        topic, share = 'kill/t', '$share/k/kill/t'
        for node, cid in ((n1, 'kill-m1'), (n2, 'kill-m2')):
            c = harness.Collector(node.port, cid, clean=False)
            c.subscribe([(share, 1)])
            c.disconnect()  # offline: its node queues its share in the store
        count = 2000
        p = self.publish_and_kill(n3, topic, count, 400, n2, 0)
        n2.crash_restart()
        n2.wait_log('cluster: JetStream stream', timeout=30)
        acked = set(p.acked)
        got = []
        for node, cid in ((n1, 'kill-m1'), (n2, 'kill-m2')):
            c = harness.Collector(node.port, cid, clean=False)
            c.collect(idle=2.0, timeout=20.0)
            c.disconnect()
            got.append(c.numbers())
        # What JetStream redelivers after its 5 s wait, once more.
        time.sleep(6)
        for i, (node, cid) in enumerate(((n1, 'kill-m1'), (n2, 'kill-m2'))):
            c = harness.Collector(node.port, cid, clean=False)
            c.collect(idle=1.0, timeout=10.0)
            c.disconnect()
            got[i] += c.numbers()
        union = collections.Counter(got[0] + got[1])
        lost = sorted(acked - set(union))
        sys.stderr.write('  kill: %d acknowledged of %d, m1 %d, m2 %d, %d twice, %d lost\n'
                         % (len(acked), count, len(got[0]), len(got[1]),
                            sum(1 for c in union.values() if c > 1), len(lost)))
        self.assertEqual(lost[:20], [], 'acknowledged, reached no member')
        self.assertGreater(len(got[0]), 0)
        self.assertGreater(len(got[1]), 0)


if __name__ == '__main__':
    unittest.main()
