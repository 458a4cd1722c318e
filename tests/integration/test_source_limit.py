"""max_connections_per_source: one source address cannot hold more than
its share of connections; other addresses are not affected, a closed
connection frees its place, and refusals are counted in $SYS.  The second
address is another loopback one (127.0.0.2).  petreld only."""

import socket
import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw

LIMIT = 5


def from_source(port, source, client_id):
    """A RawClient whose socket is bound to `source`, connected with
    CONNECT; returns it, or None when the broker closed it instead."""
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(('127.0.0.1', port))
    c = mqttraw.RawClient.__new__(mqttraw.RawClient)
    c.sock, c.buf, c.eof, c.next_pid = s, bytearray(), False, 1
    try:
        c.send(mqttraw.connect_packet(client_id))
        c.expect(mqttraw.CONNACK, timeout=3)
    except (mqttraw.Closed, OSError):
        c.close()
        return None
    return c


@skip_on_mosquitto('petreld max_connections_per_source')
class SourceLimitTest(BrokerTestCase):

    def setUp(self):
        super().setUp()
        s = socket.socket()
        try:
            s.bind(('127.0.0.2', 0))
        except OSError:
            self.skipTest('cannot bind 127.0.0.2 as a source address')
        finally:
            s.close()

    def test_per_source_limit(self):
        b = self.start_broker({'max_connections_per_source': LIMIT, 'sys_interval': 1})
        mine = []
        for i in range(LIMIT):
            c = from_source(b.port, '127.0.0.1', 'mine-%d' % i)
            self.assertIsNotNone(c, 'connection %d of %d refused' % (i + 1, LIMIT))
            mine.append(c)
            self._clients.append(c)
        self.assertIsNone(from_source(b.port, '127.0.0.1', 'one-too-many'),
                          'connection %d from one address accepted' % (LIMIT + 1))
        self.assertTrue(b.wait_log(r'max_connections_per_source \(%d\) reached' % LIMIT, 3),
                        b.tail())
        # another address is not affected, and sees the count
        other = from_source(b.port, '127.0.0.2', 'other')
        self.assertIsNotNone(other)
        self._clients.append(other)
        other.subscribe([('$SYS/broker/limits/max_connections_per_source', 0)])
        counted = 0
        deadline = time.monotonic() + 5
        while counted < 1 and time.monotonic() < deadline:  # updated every second
            counted = int(other.expect_publish(timeout=5).payload)
        self.assertGreaterEqual(counted, 1)
        # a closed connection gives its place back
        mine.pop().close()
        deadline = time.monotonic() + 5
        again = None
        while again is None and time.monotonic() < deadline:
            again = from_source(b.port, '127.0.0.1', 'again')
            if again is None:
                time.sleep(0.1)
        self.assertIsNotNone(again, 'the place of a closed connection was not given back')
        self._clients.append(again)
        again.ping()


if __name__ == '__main__':
    harness.main()
