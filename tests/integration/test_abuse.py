"""Abuse: a thousand connections that never send CONNECT, a flood of
malformed packets from many connections (the broker keeps serving others
and its memory stays flat), and the limits on subscriptions, topic length
and levels and connections per listener, each counted in $SYS.
petreld only."""

import os
import random
import resource
import selectors
import socket
import struct
import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw
import security_helpers as sec

IDLE_CONNECTIONS = 1000


def raise_fd_limit(want):
    """Raises this process's RLIMIT_NOFILE (inherited by the broker it
    starts) to at least `want`; returns False if the hard limit forbids."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return True
    if hard != resource.RLIM_INFINITY and hard < want:
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return True


def sys_values(client, prefix, want, timeout=5.0):
    """Reads $SYS values under prefix (client subscribed) until want(values)
    holds or timeout; returns {topic: int}."""
    values = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not want(values):
        try:
            p = client.expect_publish(timeout=max(0.05, deadline - time.monotonic()))
        except mqttraw.Timeout:
            break
        if p.topic.startswith(prefix):
            values[p.topic] = int(p.payload)
    return values


@skip_on_mosquitto('petreld connect_timeout')
class IdleConnectionsTest(BrokerTestCase):
    """1,000 silent connections are cut off after connect_timeout while a
    normal client keeps working."""

    @classmethod
    def setUpClass(cls):
        # the test's sockets, the broker's, and room for both to spare
        if not raise_fd_limit(2 * IDLE_CONNECTIONS + 500):
            raise harness.unittest.SkipTest('RLIMIT_NOFILE hard limit too low for %d '
                                            'connections' % IDLE_CONNECTIONS)
        cls.broker_settings = {'connect_timeout': 2, 'sys_interval': 1}
        super().setUpClass()

    def test_silent_connections_closed(self):
        w = self.raw_connected('normal-client')
        w.subscribe([(self.topic('#'), 1)])
        sel = selectors.DefaultSelector()
        socks = []
        t0 = time.monotonic()
        try:
            for _ in range(IDLE_CONNECTIONS):
                s = socket.create_connection(('127.0.0.1', self.port), timeout=5)
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
                socks.append(s)
            opened = time.monotonic() - t0
            # the broker serves others meanwhile: new clients too
            fresh = self.raw_connected('fresh-client')
            fresh.publish(self.topic('x'), b'during', qos=1)
            self.assertEqual(w.expect_publish(timeout=3).payload, b'during')
            w.ping()

            closed = 0
            first_close = None
            deadline = t0 + opened + 2 + 4      # connect_timeout + slack
            while closed < len(socks) and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.2):
                    try:
                        data = key.fileobj.recv(64)
                    except (ConnectionResetError, OSError):
                        data = b''
                    if data:
                        self.fail('broker sent %r to a connection without CONNECT' % data)
                    if first_close is None:
                        first_close = time.monotonic() - t0
                    sel.unregister(key.fileobj)
                    closed += 1
            self.assertEqual(closed, len(socks), '%d of %d silent connections still open'
                             % (len(socks) - closed, len(socks)))
            self.assertGreater(first_close, 1.5, 'closed before connect_timeout')
        finally:
            for s in socks:
                s.close()
            sel.close()
        # still serving, and the hits were counted
        fresh.publish(self.topic('y'), b'after', qos=1)
        self.assertEqual(w.expect_publish(timeout=3).payload, b'after')
        w.subscribe([('$SYS/broker/limits/connect_timeout', 0)])
        got = sys_values(w, '$SYS/broker/limits/connect_timeout',
                         lambda v: v.get('$SYS/broker/limits/connect_timeout', 0)
                         >= IDLE_CONNECTIONS)
        self.assertGreaterEqual(got.get('$SYS/broker/limits/connect_timeout', 0),
                                IDLE_CONNECTIONS, got)


def malformed_streams(rng):
    """Byte streams that must each end their connection."""
    good = mqttraw.connect_packet
    deep = '/'.join(['l'] * 20)
    yield bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200)))
    yield b'\x10\xff\xff\xff\xff\x7f'                               # bad remaining length
    yield b'\x10' + mqttraw.varint(2000000) + b'\x00'              # over max_packet_size
    yield good('x', proto_name='MQTX')                              # wrong protocol name
    yield mqttraw.packet(mqttraw.CONNECT, 0, mqttraw.mqtt_str('MQTT') + b'\x04\x02\x00\x3c'
                         + struct.pack('!H', 3) + b'\xff\xfe\xfd')  # invalid UTF-8 id
    yield mqttraw.publish_packet('before/connect', b'x')           # no CONNECT first
    yield good('flood-a') + mqttraw.publish_packet('a/+/b', b'x')  # wildcard in a name
    yield good('flood-b') + mqttraw.packet(mqttraw.SUBSCRIBE, 0, b'\x00\x01' +
                                           mqttraw.mqtt_str('a') + b'\x00')  # bad flags
    yield good('flood-c') + mqttraw.publish_packet(deep, b'x')     # over max_topic_levels
    yield good('flood-d', keepalive=1) + b'\x30' + mqttraw.varint(500) + b'\x00\x01'  # then silence
    yield good('flood-e') + good('flood-e')                         # second CONNECT
    yield good('flood-f', will=('w/' + 'x' * 200, b'x', 0, False))  # will over max_topic_length


@skip_on_mosquitto('petreld limits')
class MalformedFloodTest(BrokerTestCase):
    """Many connections sending malformed packets: each is closed, others
    are served throughout, and memory does not grow."""

    # Rounds last about connect_timeout (streams that stop half-way wait
    # for it), so the connections of a round run side by side.
    ROUNDS = 4
    PER_ROUND = 120

    @classmethod
    def setUpClass(cls):
        # A sanitizer build holds freed memory in quarantine; keep it small
        # so that RSS measures what the broker keeps, not what it freed.
        cls.saved_asan = os.environ.get('ASAN_OPTIONS')
        if cls.saved_asan is not None or sec.sanitized_build():
            os.environ['ASAN_OPTIONS'] = ((cls.saved_asan + ':') if cls.saved_asan else '') + \
                'quarantine_size_mb=4'
        cls.broker_settings = {'max_packet_size': '64k', 'max_topic_levels': 8,
                               'max_topic_length': 128, 'connect_timeout': 2}
        try:
            super().setUpClass()
        finally:
            if cls.saved_asan is None:
                os.environ.pop('ASAN_OPTIONS', None)
            else:
                os.environ['ASAN_OPTIONS'] = cls.saved_asan

    def flood_round(self, rng):
        streams = list(malformed_streams(rng))
        clients = []
        for i in range(self.PER_ROUND):
            c = mqttraw.RawClient(self.port)
            c.try_send(streams[i % len(streams)])
            clients.append(c)
        for c in clients:
            self.assertTrue(c.wait_closed(5), 'a malformed connection was left open')
            for p in c.before_close:
                # at most a refusing CONNACK, or the CONNACK of a good CONNECT
                self.assertEqual(p.type, mqttraw.CONNACK, p)
            c.close()

    def test_flood_leaves_others_served_and_memory_flat(self):
        rng = random.Random(8)
        w = self.watcher()
        pub = self.raw_connected('steady-publisher')
        pid = self.broker.pid
        n = 0

        def still_served():
            nonlocal n
            n += 1
            pub.publish(self.topic('alive'), b'%d' % n, qos=1)
            self.assertEqual(w.expect_publish(timeout=5).payload, b'%d' % n)

        # warm up: the allocator and the broker's tables reach their size
        for _ in range(2):
            self.flood_round(rng)
            still_served()
        before = sec.rss_kb(pid)
        for _ in range(self.ROUNDS):
            self.flood_round(rng)
            still_served()
        after = sec.rss_kb(pid)
        if os.environ.get('PETREL_TEST_VERBOSE'):
            print('RSS %d -> %d kB' % (before, after))
        margin = 24 * 1024 if sec.sanitized_build() else 6 * 1024
        self.assertLess(after - before, margin,
                        'RSS grew from %d to %d kB over %d malformed connections'
                        % (before, after, self.ROUNDS * self.PER_ROUND))
        self.assertTrue(self.broker.wait_log(r'protocol violation', 1))


@skip_on_mosquitto('petreld limits')
class LimitsTest(BrokerTestCase):
    """max_subscriptions_per_client, max_topic_length, max_topic_levels and
    a listener's own max_connections."""

    @classmethod
    def setUpClass(cls):
        cls.broker_settings = {'max_subscriptions_per_client': 3, 'max_topic_length': 32,
                               'max_topic_levels': 4, 'sys_interval': 1,
                               'listen': ['127.0.0.1:0', '127.0.0.1:0 max_connections=3']}
        super().setUpClass()
        cls.limited = cls.broker.listeners[1][1]

    def test_max_subscriptions(self):
        c = self.raw_connected('subs')
        self.assertEqual(c.subscribe([('s/1', 0), ('s/2', 1), ('s/3', 0), ('s/4', 0)]),
                         [0, 1, 0, 0x80])
        self.assertEqual(c.subscribe([('s/2', 0)]), [0])        # a replacement is no new one
        c.unsubscribe(['s/1'])
        self.assertEqual(c.subscribe([('s/4', 1), ('s/5', 0)]), [1, 0x80])
        self.assertTrue(self.broker.wait_log(r"'s/5' refused: max_subscriptions_per_client", 3))

    def test_topic_length(self):
        ok = 't/' + 'x' * 30                                     # 32 bytes
        c = self.raw_connected('len')
        self.assertEqual(c.subscribe([(ok, 0), (ok + 'y', 0), ('t/#', 0)]), [0, 0x80, 0])
        c.publish(ok, b'fits')
        self.assertEqual(c.expect_publish().payload, b'fits')
        c.try_send(mqttraw.publish_packet(ok + 'y', b'too long'))
        self.assertTrue(c.wait_closed(3))
        self.assertTrue(self.broker.wait_log(r'protocol violation: topic over max_topic_length',
                                             3))
        will = self.raw()
        will.send(mqttraw.connect_packet('long-will', will=(ok + 'y', b'x', 0, False)))
        self.assertTrue(will.wait_closed(3))
        self.assertEqual(will.before_close, [])

    def test_topic_levels(self):
        c = self.raw_connected('levels')
        self.assertEqual(c.subscribe([('a/b/c/d', 0), ('a/b/c/#', 0), ('a/b/c/d/#', 0),
                                      ('a/b/c/d/e', 0)]), [0, 0, 0x80, 0x80])
        c.publish('a/b/c/d', b'four levels')
        self.assertEqual(c.expect_publish().payload, b'four levels')
        c.try_send(mqttraw.publish_packet('a/b/c/d/e', b'five'))
        self.assertTrue(c.wait_closed(3))

    def test_listener_max_connections(self):
        held = []
        for i in range(3):
            c = self.raw(self.limited)
            c.connect('held-%d' % i)
            held.append(c)
        extra = self.raw(self.limited)
        self.assertTrue(extra.wait_closed(3), 'a 4th connection to a listener with '
                                              'max_connections=3 stayed open')
        self.assertEqual(extra.before_close, [])
        self.raw_connected('other-listener').ping()        # the other listener is not limited
        held.pop().disconnect()
        time.sleep(0.2)
        again = self.raw(self.limited)
        again.connect('held-again')
        again.ping()
        self.assertTrue(self.broker.wait_log(r'its max_connections \(3\) reached', 3))

    def test_zz_counters(self):
        # runs last (alphabetical order): every limit above was hit
        w = self.raw_connected('counters')
        w.subscribe([('$SYS/broker/limits/#', 0)])
        names = ['max_subscriptions_per_client', 'max_topic_length', 'max_topic_levels',
                 'listener_max_connections']
        got = sys_values(w, '$SYS/broker/limits/',
                         lambda v: all(v.get('$SYS/broker/limits/' + n, 0) >= 1 for n in names))
        for n in names:
            self.assertGreaterEqual(got.get('$SYS/broker/limits/' + n, 0), 1, (n, got))


if __name__ == '__main__':
    harness.main()
