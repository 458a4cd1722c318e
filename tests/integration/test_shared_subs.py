"""Shared subscriptions ($share/{group}/{filter}) with MQTT 3.1.1 clients
(paho, mosquitto_sub, raw sockets): one delivery per group spread
round-robin over the connected members, ordinary subscribers untouched,
handoff of a departing member's unacknowledged messages, persistent members
holding messages while no member is online, restarts, the ACL on the filter
proper, invalid share names and no retained messages on subscribe.  Also the
end of a persistent member's session (expiry, DISCONNECT with expiry 0,
clean start, expiry while petreld was stopped) handing everything it held,
stored backlog included, to another member, and a persistent member that
goes offline giving its never-sent messages to connected members."""

import threading
import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw
from mqttraw import Raw5, P_SESSION_EXPIRY
import security_helpers as sec

REFUSED = 0x80


def drain(clients, n, timeout=10.0):
    """Reads messages from raw clients until n have arrived in total (or
    the deadline); returns one list of payloads per client, acknowledging
    each QoS 1/2 message."""
    got = [[] for _ in clients]
    deadline = time.monotonic() + timeout
    while sum(map(len, got)) < n and time.monotonic() < deadline:
        for i, c in enumerate(clients):
            try:
                p = c.expect_publish(timeout=0.05)
            except mqttraw.Timeout:
                continue
            got[i].append(bytes(p.payload))
    return got


def wait_shared_counter(test, b, watcher_id, name, expected):
    """Asserts that $SYS/broker/shared/`name` of broker b, read by a new
    client `watcher_id`, shows `expected` (bytes) within 5 s."""
    w = test.raw(b.port)
    w.connect(watcher_id)
    w.subscribe([('$SYS/broker/shared/' + name, 0)])
    deadline = time.monotonic() + 5
    value = None
    while time.monotonic() < deadline and value != expected:
        value = bytes(w.expect_publish(timeout=3).payload)
    test.assertEqual(value, expected)


def drain_paho(clients, n, timeout=10.0):
    got = [[] for _ in clients]
    deadline = time.monotonic() + timeout
    while sum(map(len, got)) < n and time.monotonic() < deadline:
        for i, c in enumerate(clients):
            try:
                m = c.messages.get(timeout=0.05)
            except Exception:
                continue
            got[i].append(bytes(m.payload))
    return got


class SharedSubsTest(BrokerTestCase):

    def share(self, group='g', suffix=''):
        return '$share/%s/%s' % (group, self.topic(suffix))

    def payloads(self, n, tag='m'):
        return [b'%s-%03d' % (tag.encode(), i) for i in range(n)]

    def assert_partition(self, parts, expected):
        """The parts are disjoint and together exactly the expected set."""
        flat = [p for part in parts for p in part]
        self.assertEqual(len(flat), len(set(flat)), 'a message reached two members: %r' % parts)
        self.assertEqual(sorted(flat), sorted(expected))

    def test_round_robin_over_paho_members(self):
        members = []
        for i in range(3):
            m = self.paho('share-rr-%d' % i)
            m.connect()
            self.assertEqual(m.subscribe(self.share(), 1), [1])
            members.append(m)
        pub = self.paho('share-rr-pub')
        pub.connect()
        sent = self.payloads(30)
        for p in sent:
            pub.publish(self.topic(), p, qos=1)
        got = drain_paho(members, len(sent))
        self.assert_partition(got, sent)
        # strictly round-robin while all are connected: 10 each
        self.assertEqual([len(g) for g in got], [10, 10, 10], got)
        for m in members:
            m.expect_nothing(0.3)

    def test_mosquitto_sub_members_and_an_ordinary_subscriber(self):
        a = self.mosquitto_sub(self.share('grp'), qos=1).wait_subscribed()
        b = self.mosquitto_sub(self.share('grp'), qos=1).wait_subscribed()
        everything = self.mosquitto_sub(self.topic(), qos=1).wait_subscribed()
        pub = self.raw_connected('share-mosq-pub')
        sent = ['n%02d' % i for i in range(12)]
        for p in sent:
            pub.publish(self.topic(), p.encode(), qos=1)
        all_got = [everything.get()[3] for _ in sent]
        self.assertEqual(all_got, sent)       # the ordinary subscriber: all, in order
        got = [[], []]
        deadline = time.monotonic() + 10
        while len(got[0]) + len(got[1]) < len(sent) and time.monotonic() < deadline:
            for i, s in enumerate((a, b)):
                try:
                    got[i].append(s.get(timeout=0.05)[3])
                except AssertionError:
                    pass
        self.assert_partition(got, sent)
        self.assertEqual([len(g) for g in got], [6, 6])
        a.expect_nothing(0.3)
        b.expect_nothing(0.1)

    def test_each_group_gets_its_own_copy(self):
        g1 = [self.raw_connected('share-g1-%d' % i) for i in range(2)]
        g2 = [self.raw_connected('share-g2-%d' % i) for i in range(2)]
        for c in g1:
            c.subscribe([(self.share('one'), 1)], expect_granted=[1])
        for c in g2:
            c.subscribe([(self.share('two'), 1)], expect_granted=[1])
        pub = self.raw_connected()
        sent = self.payloads(8)
        for p in sent:
            pub.publish(self.topic(), p, qos=1)
        self.assert_partition(drain(g1, 8), sent)
        self.assert_partition(drain(g2, 8), sent)

    @skip_on_mosquitto('mosquitto 2.0.11 sends one copy per client (the spec allows two)')
    def test_member_with_an_ordinary_subscription_gets_that_copy_too(self):
        both = self.raw_connected('share-both')
        other = self.raw_connected('share-other')
        both.subscribe([(self.share(), 0), (self.topic(), 0)], expect_granted=[0, 0])
        other.subscribe([(self.share(), 0)], expect_granted=[0])
        pub = self.raw_connected()
        sent = self.payloads(4)
        for p in sent:
            pub.publish(self.topic(), p)
        got = drain([both, other], 8)
        # all four as an ordinary subscriber, plus its round-robin share
        self.assertEqual(sorted(set(got[0])), sorted(sent))
        self.assertEqual(len(got[0]), 6, got)
        self.assertEqual(len(got[1]), 2, got)

    def test_grants_qos_per_member(self):
        q0 = self.raw_connected('share-q0')
        q1 = self.raw_connected('share-q1')
        q0.subscribe([(self.share(), 0)], expect_granted=[0])
        q1.subscribe([(self.share(), 2)], expect_granted=[2])
        pub = self.raw_connected()
        pub.publish(self.topic(), b'a', qos=1)
        pub.publish(self.topic(), b'b', qos=1)
        p0 = q0.expect_publish()
        p1 = q1.expect_publish()
        self.assertEqual((p0.qos, p1.qos), (0, 1))
        self.assertEqual(sorted([p0.payload, p1.payload]), [b'a', b'b'])

    @skip_on_mosquitto('mosquitto 2.0.11 sends retained messages to shared subscriptions')
    def test_no_retained_messages_on_shared_subscribe(self):
        pub = self.raw_connected()
        pub.publish(self.topic(), b'kept', qos=1, retain=True)
        try:
            member = self.raw_connected('share-ret')
            member.subscribe([(self.share(), 1)], expect_granted=[1])
            member.expect_nothing(0.5)
            plain = self.subscribed(1, 'share-ret-plain')
            self.assertEqual(plain.expect_publish().payload, b'kept')   # it is retained
            # a live message still reaches the member, with retain 0 as
            # for any established subscription
            pub.publish(self.topic(), b'live', qos=1, retain=True)
            p = member.expect_publish()
            self.assertEqual((p.payload, p.retain), (b'live', False))
        finally:
            pub.publish(self.topic(), b'', qos=1, retain=True)

    @skip_on_mosquitto('mosquitto 2.0.11 accepts some of these')
    def test_invalid_share_names_refused(self):
        c = self.raw_connected('share-invalid')
        # well-formed filters with a bad share name: refused one by one
        bad = ['$share/', '$share/g', '$share/g/', '$share//t', '$share/+/t', '$share/#']
        for f in bad:
            self.assertEqual(c.subscribe([(f, 1)]), [REFUSED], f)
        good = ['$share/g/#', '$share/g/+/x', '$share/g-1.x/a/b', '$sharex/y', '$share']
        self.assertEqual(c.subscribe([(f, 1) for f in good]), [1] * len(good))
        # the connection stays usable
        c.ping()
        # filters against the wildcard rules make a malformed packet
        # [MQTT-4.7.1-1/2]: the connection is closed
        for f in ('$share/g+/t', '$share/a#b/t', '$share/g/t/#/x', '$share/g/a+'):
            c = self.raw_connected()
            c.send(mqttraw.subscribe_packet(1, [(f, 1)]))
            self.assertTrue(c.wait_closed(3), f)

    def test_unsubscribe_leaves_the_group(self):
        a = self.raw_connected('share-unsub-a')
        b = self.raw_connected('share-unsub-b')
        for c in (a, b):
            c.subscribe([(self.share(), 1)], expect_granted=[1])
        b.unsubscribe([self.share()])
        pub = self.raw_connected()
        sent = self.payloads(4)
        for p in sent:
            pub.publish(self.topic(), p, qos=1)
        self.assertEqual(drain([a, b], 4), [sent, []])

    @skip_on_mosquitto('petreld hands the messages of a departing member on')
    def test_departing_clean_member_hands_unacked_messages_on(self):
        b = self.start_broker({'max_inflight': 2})
        holder = self.raw(b.port)
        holder.connect('share-holder', clean=True)
        holder.subscribe([(self.share(), 1)], expect_granted=[1])
        taker = self.raw(b.port)
        taker.connect('share-taker', clean=True)
        taker.subscribe([(self.share(), 1)], expect_granted=[1])
        pub = self.raw(b.port)
        pub.connect('share-pub')
        sent = self.payloads(10)
        for p in sent:
            pub.publish(self.topic(), p, qos=1)
        # The holder never acknowledges: 2 in flight, 3 queued behind them.
        held = [bytes(holder.expect_publish(ack=False).payload) for _ in range(2)]
        holder.expect_nothing(0.3)
        first = drain([taker], 5)[0]
        # round-robin, the holder first: it has the even ones
        self.assertEqual(held, sent[0:4:2])
        self.assertEqual(first, sent[1::2])
        holder.close()                      # clean session: it ends here
        rest = drain([taker], 5)[0]
        self.assertEqual(rest, sent[0::2])  # in flight first, then queued, in order
        taker.expect_nothing(0.3)
        self.assertTrue(b.wait_log(r'share-holder: 5 shared messages handed to other members'),
                        b.tail())

    @skip_on_mosquitto('petreld queues on a persistent member when none is online')
    def test_persistent_member_receives_when_no_member_is_online(self):
        cid = 'share-persist-%d' % (int(time.time() * 1000) % 1000000)
        p = self.raw_connected(cid, clean=False)
        p.subscribe([(self.share(), 1)], expect_granted=[1])
        p.disconnect()
        pub = self.raw_connected()
        sent = self.payloads(3)
        for m in sent:
            pub.publish(self.topic(), m, qos=1)
        p = self.raw()
        self.assertTrue(p.connect(cid, clean=False).session_present)
        self.assertEqual(drain([p], 3)[0], sent)
        # Once someone is connected, it gets them and the offline one none.
        online = self.raw_connected('share-online')
        online.subscribe([(self.share(), 1)], expect_granted=[1])
        p.disconnect()
        more = self.payloads(4, 'more')
        for m in more:
            pub.publish(self.topic(), m, qos=1)
        self.assertEqual(drain([online], 4)[0], more)
        p = self.raw()
        self.assertTrue(p.connect(cid, clean=True).session_present is False)
        p.expect_nothing(0.3)

    @skip_on_mosquitto('petreld only')
    def test_shared_subscription_survives_restart(self):
        b = self.start_broker()
        p = self.raw(b.port)
        p.connect('share-restart', clean=False)
        p.subscribe([(self.share(), 1)], expect_granted=[1])
        p.disconnect()
        b.restart()
        pub = self.raw(b.port)
        pub.connect('share-restart-pub')
        sent = self.payloads(3)
        for m in sent:
            pub.publish(self.topic(), m, qos=1)
        other = self.raw(b.port)
        other.connect('share-restart-other')
        other.subscribe([(self.share(), 1)], expect_granted=[1])
        p = self.raw(b.port)
        self.assertTrue(p.connect('share-restart', clean=False).session_present)
        self.assertEqual(drain([p], 3)[0], sent)
        # and it is still a member: shares with `other` now
        more = self.payloads(4, 'more')
        for m in more:
            pub.publish(self.topic(), m, qos=1)
        got = drain([p, other], 4)
        self.assert_partition(got, more)
        self.assertEqual([len(g) for g in got], [2, 2])

    @skip_on_mosquitto('petreld $SYS names')
    def test_sys_counters(self):
        b = self.start_broker({'sys_interval': 1})
        m = self.raw(b.port)
        m.connect('share-sys')
        m.subscribe([(self.share(), 1)], expect_granted=[1])
        pub = self.raw(b.port)
        pub.connect('share-sys-pub')
        for i in range(3):
            pub.publish(self.topic(), b'x', qos=1)
        drain([m], 3)
        wait_shared_counter(self, b, 'share-sys-watch', 'delivered', b'3')


def paho5_member(port, client_id, share, expiry):
    """Paho as an MQTT 5.0 client: joins `share` (QoS 1) with a Session
    Expiry Interval of `expiry` seconds, then disconnects normally, leaving
    its session to expire."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry
    connected, subscribed, gone = threading.Event(), threading.Event(), threading.Event()
    c.on_connect = lambda client, ud, flags, rc, p=None: rc == 0 and connected.set()
    c.on_subscribe = lambda client, ud, mid, rcs, p=None: subscribed.set()
    c.on_disconnect = lambda client, ud, rc, p=None: gone.set()
    c.connect('127.0.0.1', port, 60, clean_start=True, properties=props)
    c.loop_start()
    try:
        assert connected.wait(5), 'paho 5.0: no CONNACK'
        c.subscribe(share, qos=1)
        assert subscribed.wait(5), 'paho 5.0: no SUBACK'
        c.disconnect()
        assert gone.wait(5), 'paho 5.0: DISCONNECT not sent'
    finally:
        c.loop_stop()


@skip_on_mosquitto('petreld hands on what a persistent member held when its session ends')
class SharedSubsHandoffTest(BrokerTestCase):
    """A persistent member's session ends: what it held (in memory and only
    in the store) goes to another member of the group, in order."""

    def share(self):
        return '$share/g/%s' % self.topic()

    def payloads(self, n, tag='m'):
        return [b'%s-%03d' % (tag.encode(), i) for i in range(n)]

    def publish_to_offline_member(self, b, n, expiry):
        """A paho 5.0 member 'share-exp' with Session Expiry Interval
        `expiry`, alone in the group and offline, is given n QoS 1
        messages.  Returns (the publisher, the messages)."""
        paho5_member(b.port, 'share-exp', self.share(), expiry)
        self.assertTrue(b.wait_log(r'share-exp.*disconnected'), b.tail())
        pub = self.raw(b.port)
        pub.connect('share-exp-pub')
        sent = self.payloads(n)
        for p in sent:
            pub.publish(self.topic(), p, qos=1)
        return pub, sent

    def queue_on_expiring_member(self, b, n, expiry=2):
        """A paho 5.0 member with a short Session Expiry Interval, alone in
        the group and offline, is given n QoS 1 messages; then a clean 3.1.1
        member joins.  Returns (the new member, the messages)."""
        _, sent = self.publish_to_offline_member(b, n, expiry)
        taker = self.raw(b.port)
        taker.connect('share-exp-taker')
        taker.subscribe([(self.share(), 1)], expect_granted=[1])
        return taker, sent

    def test_expired_member_hands_its_messages_on(self):
        b = self.start_broker()
        taker, sent = self.queue_on_expiring_member(b, 10)
        taker.expect_nothing(0.5)           # they wait on the offline member
        self.assertEqual(drain([taker], len(sent), timeout=15)[0], sent)
        taker.expect_nothing(0.3)
        self.assertTrue(b.wait_log(r'share-exp: 10 shared messages handed'), b.tail())

    def test_expired_member_hands_on_its_stored_backlog(self):
        # In memory: max_inflight + 100 = 102 queued; the rest only in the store.
        b = self.start_broker({'max_inflight': 2})
        taker, sent = self.queue_on_expiring_member(b, 250)
        self.assertEqual(drain([taker], len(sent), timeout=20)[0], sent)
        taker.expect_nothing(0.3)
        self.assertTrue(b.wait_log(r'share-exp: 250 shared messages handed'), b.tail())

    def test_expired_member_alone_drops_and_counts(self):
        b = self.start_broker({'sys_interval': 1})
        self.publish_to_offline_member(b, 3, 3)
        # queued on it (not dropped on arrival): it has not expired yet
        self.assertNotRegex(b.log_text(), r'share-exp: session expired|dropped')
        self.assertTrue(b.wait_log(r'share-exp: session expired', timeout=10), b.tail())
        self.assertTrue(b.wait_log(r"no member can take a QoS 1 message on '%s': dropped"
                                   % self.topic()), b.tail())
        wait_shared_counter(self, b, 'share-exp-watch', 'dropped', b'3')

    def hand_on_across_restart(self, n, settings=None):
        b = self.start_broker(settings)
        pub, sent = self.publish_to_offline_member(b, n, 2)
        pub.close()
        # A second, persistent member joins and leaves: both are offline
        # when petreld stops, and the first expires while it is stopped.
        taker = self.raw(b.port)
        taker.connect('share-exp-taker', clean=False)
        taker.subscribe([(self.share(), 1)], expect_granted=[1])
        taker.disconnect()
        b.stop(keep=True)
        time.sleep(3)
        b.start()
        self.assertTrue(b.wait_log(r'share-exp: %d shared messages? handed' % n), b.tail())
        taker = self.raw(b.port)
        self.assertTrue(taker.connect('share-exp-taker', clean=False).session_present)
        self.assertEqual(drain([taker], n, timeout=20)[0], sent)
        taker.expect_nothing(0.3)
        gone = self.raw(b.port)
        self.assertFalse(gone.connect('share-exp', clean=False).session_present)

    def test_member_expired_while_stopped_hands_on_at_start(self):
        self.hand_on_across_restart(5)

    def test_member_expired_while_stopped_hands_on_stored_backlog(self):
        self.hand_on_across_restart(150, {'max_inflight': 2})

    def raw5(self, port, client_id, **kw):
        c = Raw5(port)
        self._clients.append(c)
        c.ack = c.connect5(client_id, **kw)
        return c

    def holder_with_backlog(self, b, n):
        """A connected 5.0 persistent member that acknowledges nothing,
        alone in the group, is given n QoS 1 messages (2 in flight, 102
        queued in memory, the rest in the store), then a clean member
        joins.  Returns (holder, taker, messages)."""
        holder = self.raw5(b.port, 'share-holder', props=[(P_SESSION_EXPIRY, 600)])
        holder.subscribe5([(self.share(), 1)])
        pub = self.raw(b.port)
        pub.connect('share-holder-pub')
        sent = self.payloads(n)
        for p in sent:
            pub.publish(self.topic(), p, qos=1)
        self.assertEqual([bytes(holder.expect_publish5(ack=False).payload) for _ in range(2)],
                         sent[:2])
        taker = self.raw(b.port)
        taker.connect('share-holder-taker')
        taker.subscribe([(self.share(), 1)], expect_granted=[1])
        taker.expect_nothing(0.3)
        return holder, taker, sent

    def test_disconnect_with_expiry_zero_hands_everything_on(self):
        b = self.start_broker({'max_inflight': 2})
        holder, taker, sent = self.holder_with_backlog(b, 200)
        holder.send(mqttraw.disconnect5_packet(0, [(P_SESSION_EXPIRY, 0)]))
        self.assertEqual(drain([taker], len(sent), timeout=20)[0], sent)
        taker.expect_nothing(0.3)
        self.assertTrue(b.wait_log(r'share-holder: 200 shared messages handed'), b.tail())

    def test_clean_start_takeover_hands_everything_on(self):
        b = self.start_broker({'max_inflight': 2})
        holder, taker, sent = self.holder_with_backlog(b, 200)
        again = self.raw5(b.port, 'share-holder', clean=True)
        self.assertFalse(again.ack.session_present)
        self.assertEqual(drain([taker], len(sent), timeout=20)[0], sent)
        taker.expect_nothing(0.3)
        again.expect_nothing(0.1)

    def test_offline_member_gives_never_sent_messages_to_connected_ones(self):
        b = self.start_broker({'max_inflight': 2})
        holder, taker, sent = self.holder_with_backlog(b, 200)
        holder.close()                      # offline; its session stays (600 s)
        # the 198 never sent go to the connected member at once, in order
        self.assertEqual(drain([taker], 198, timeout=20)[0], sent[2:])
        taker.expect_nothing(0.3)
        self.assertTrue(b.wait_log(r'share-holder: offline, 198 queued shared messages handed'),
                        b.tail())
        # the two in flight stay with it, resent when it returns
        holder = self.raw5(b.port, 'share-holder', clean=False,
                           props=[(P_SESSION_EXPIRY, 600)])
        self.assertTrue(holder.ack.session_present)
        back = [holder.expect_publish5() for _ in range(2)]
        self.assertEqual([bytes(p.payload) for p in back], sent[:2])
        self.assertTrue(all(p.dup for p in back))
        holder.expect_nothing(0.3)


ACL = """user alice
topic subscribe jobs/#
topic read jobs/alice/#

user bob
topic subscribe jobs/#
topic read jobs/#

user pub
topic write #
"""
USERS = {'alice': 'a1ice', 'bob': 'b0b', 'pub': 'pub'}


@skip_on_mosquitto('petreld ACL file')
class SharedSubsAclTest(sec.AclBrokerTestCase):
    acl_text = ACL
    users = USERS

    def user(self, name, suffix=''):
        c = self.raw()
        c.connect('%s-%s%s' % (name, self.id().rsplit('.', 1)[-1][-20:], suffix),
                  username=name, password=USERS[name])
        return c

    def test_subscribe_checks_the_filter_proper(self):
        alice = self.user('alice')
        self.assertEqual(alice.subscribe([('$share/g/jobs/#', 1), ('$share/g/other/#', 1),
                                          ('$share/jobs/x', 1)]),
                         [1, REFUSED, REFUSED])

    def test_read_checked_per_member(self):
        alice, bob = self.user('alice'), self.user('bob')
        for c in (alice, bob):
            c.subscribe([('$share/w/jobs/#', 1)], expect_granted=[1])
        pub = self.user('pub')
        # alice may not read jobs/bob: every one goes to bob
        for i in range(4):
            pub.publish('jobs/bob/%d' % i, b'b%d' % i, qos=1)
        got = drain([alice, bob], 4)
        self.assertEqual(got, [[], [b'b0', b'b1', b'b2', b'b3']])
        # both may read jobs/alice: shared between them
        for i in range(4):
            pub.publish('jobs/alice/%d' % i, b'a%d' % i, qos=1)
        got = drain([alice, bob], 4)
        self.assertEqual(sorted(got[0] + got[1]), [b'a0', b'a1', b'a2', b'a3'])
        self.assertEqual([len(g) for g in got], [2, 2])


if __name__ == '__main__':
    harness.main()
