"""test_reconnect.py - automatic reconnection without losing QoS 1 messages.

- Mosquitto (persistence on, sessions saved on every change) is killed with
  SIGKILL while a persistent subscriber and a persistent publisher are
  connected, some of the publisher's messages unacknowledged in its socket,
  then more published while the broker is down; after a restart on the
  same port both clients reconnect by themselves and the subscriber gets
  every message.  Then the same with a clean restart (SIGTERM).
- petreld (sessions in memory only for now, so no restart) drops the
  clients' connections through a session takeover; they reconnect by
  themselves, resume their sessions, and nothing is lost.
"""

import os
import socket
import struct
import threading
import time

import clienttest as ct

KEEPALIVE = 2


def raw_takeover(port, client_id):
    """Connects with client_id (persistent session) so the broker drops
    the current holder, then disconnects.  Returns session_present."""
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    try:
        cid = client_id.encode()
        body = b'\x00\x04MQTT\x04\x00' + struct.pack('>H', 30) + struct.pack('>H', len(cid)) + cid
        s.sendall(bytes([0x10, len(body)]) + body)
        connack = b''
        while len(connack) < 4:
            chunk = s.recv(4 - len(connack))
            if not chunk:
                raise AssertionError('takeover: connection closed before CONNACK')
            connack += chunk
        if connack[0] != 0x20 or connack[3] != 0:
            raise AssertionError('takeover: bad CONNACK %r' % connack)
        s.sendall(b'\xe0\x00')  # DISCONNECT
        return connack[2] & 1
    finally:
        s.close()


class ReconnectBase(ct.unittest.TestCase):

    def setUp(self):
        self.drivers = []
        self.broker = None

    def tearDown(self):
        for d in self.drivers:
            d.close()
        if self.broker:
            self.broker.kill()
            self.broker.stop()

    def driver(self, cid, *extra):
        d = ct.Driver(self.broker.port, '--id', cid, '--persistent', '--keepalive', KEEPALIVE,
                      '--connect-timeout', 1000, *extra)
        self.drivers.append(d)
        return d

    def online_pair(self, prefix, tag):
        """A persistent subscriber to r/# (QoS 1) and a publisher, both
        with --reconnect, ids `prefix`-sub/pub-`tag`-PID; phase 1: ten
        messages a0..a9, all online, published and received."""
        pid = os.getpid()
        sub = self.driver('%s-sub-%s-%d' % (prefix, tag, pid), '--reconnect', 50, 400)
        sub.call('connect')
        sub.expect('connected sp=0')
        sub.call('sub 1 r/#')
        sub.expect('subscribed id=\\d+ granted=1')
        pub = self.driver('%s-pub-%s-%d' % (prefix, tag, pid), '--reconnect', 50, 400)
        pub.call('connect')
        pub.expect('connected sp=0')
        pub.call('pubn 1 r/x a 10')
        for _ in range(10):
            pub.expect('published id=\\d+ rc=PETREL_OK')
        self.collect(sub, ['a%d' % i for i in range(10)])
        return sub, pub

    def collect(self, sub, expected, timeout=20):
        """Reads messages until every payload in `expected` has arrived.
        Returns (received payload list, duplicates)."""
        seen = []
        missing = set(expected)
        deadline = time.monotonic() + timeout
        while missing:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError('lost %d messages: %s' % (len(missing), sorted(missing)))
            payload = sub.messages(1, left)[0][4]
            seen.append(payload)
            missing.discard(payload)
        return seen, len(seen) - len(set(seen))

    def stop_broker(self, crash):
        """SIGKILL with `crash`, else SIGTERM."""
        if crash:
            self.broker.kill()
        else:
            self.broker.terminate()

    def resume_after_restart(self, sub, pub, crash, queued, expected, unacked, label):
        """The broker has just been stopped (killed with `crash`): both
        clients notice, `pub` queues ten messages `queued`0..9 while it is
        down, the broker comes back on the same port and data, both resume
        their sessions, `sub` gets every payload of `expected`, and the
        `unacked` publications not yet acknowledged complete."""
        for d in (sub, pub):
            d.expect('disconnected reason=\\S+ retry=1')
        pub.call('pubn 1 r/x %s 10' % queued)
        time.sleep(0.2)
        self.broker.start()   # same port, same data directory
        sub.expect('connected sp=1')
        pub.expect('connected sp=1')
        seen, dups = self.collect(sub, expected)
        for _ in range(unacked):
            pub.expect('published id=\\d+ rc=PETREL_OK')
        pub.send('pending')
        pub.expect('pending 0')
        print('%s (%s): %d messages received, %d duplicates (QoS 1 allows them)'
              % (label, 'SIGKILL' if crash else 'SIGTERM', len(seen), dups))


class RestartCases:
    """The two restarts checked against each broker, by its class's
    start_pair and restart_check: killed (SIGKILL) and stopped cleanly."""

    def test_killed_and_restarted(self):
        sub, pub = self.start_pair('kill')
        self.restart_check(sub, pub, crash=True)

    def test_restarted_cleanly(self):
        sub, pub = self.start_pair('term')
        self.restart_check(sub, pub, crash=False)


class MosquittoRestart(RestartCases, ReconnectBase):

    def start_pair(self, tag):
        self.broker = ct.Mosquitto(persistence=True).start()
        # Phase 1, all online.
        sub, pub = self.online_pair('rs', tag)
        # Let the autosave of the subscription reach the disk.
        store = os.path.join(self.broker.tmp, 'store', 'mosquitto.db')
        ct.wait_until(lambda: os.path.exists(store), what='mosquitto persistence file')
        time.sleep(0.3)
        return sub, pub

    def restart_check(self, sub, pub, crash):
        # Phase 2: written to the socket but never read by the broker.
        self.broker.suspend()
        pub.call('pubn 1 r/x b 10')
        self.stop_broker(crash)
        # Phase 3: queued by the client while the broker is down.
        self.resume_after_restart(sub, pub, crash, 'c',
                                  ['%s%d' % (p, i) for p in 'bc' for i in range(10)], 20,
                                  'restart')


class PetreldTakeover(ReconnectBase):
    """petreld keeps sessions in memory: a takeover drops the connection
    without losing the session, so the client must come back by itself."""

    def setUp(self):
        super().setUp()
        self.broker = ct.Petreld().start()

    def test_subscriber_dropped_and_back(self):
        cid = 'tk-sub-%d' % os.getpid()
        # A backoff long enough that the takeover below holds the session
        # while messages are queued for it.
        sub = self.driver(cid, '--reconnect', 800, 1200)
        sub.call('connect')
        sub.expect('connected sp=0')
        sub.call('sub 1 k/#')
        sub.expect('subscribed id=\\d+ granted=1')
        self.assertEqual(raw_takeover(self.broker.port, cid), 1)
        sub.expect('disconnected reason=PETREL_ECONNLOST retry=1')
        for i in range(5):
            r = ct.run([ct.MOSQUITTO_PUB, '-p', str(self.broker.port), '-t', 'k/x', '-q', '1',
                        '-m', 'queued %d' % i])
            self.assertEqual(r.returncode, 0, r.stderr)
        sub.expect('connected sp=1', timeout=5)
        seen, dups = self.collect(sub, ['queued %d' % i for i in range(5)])
        self.assertEqual(dups, 0)

    def test_publisher_dropped_with_messages_in_flight(self):
        pid = os.getpid()
        sub = self.driver('tk-psub-%d' % pid, '--reconnect', 100, 200)
        sub.call('connect')
        sub.expect('connected sp=0')
        sub.call('sub 1 p/#')
        sub.expect('subscribed')
        cid = 'tk-pub-%d' % pid
        pub = self.driver(cid, '--reconnect', 300, 600)
        pub.call('connect')
        pub.expect('connected sp=0')
        # The broker does not run while the messages go out and the
        # takeover connects; which it reads first is up to the kernel.
        self.broker.suspend()
        pub.call('pubn 1 p/x m 10')
        taker = threading.Thread(target=raw_takeover, args=(self.broker.port, cid))
        taker.start()
        time.sleep(0.2)
        self.broker.resume()
        taker.join(10)
        pub.expect('disconnected reason=PETREL_ECONNLOST retry=1')
        pub.expect('connected sp=1', timeout=5)
        self.collect(sub, ['m%d' % i for i in range(10)])
        for _ in range(10):
            pub.expect('published id=\\d+ rc=PETREL_OK')


if __name__ == '__main__':
    ct.main()
