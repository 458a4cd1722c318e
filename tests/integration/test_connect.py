"""CONNECT / CONNACK, keep alive, PINGREQ and DISCONNECT."""

import socket
import threading
import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw
from mqttraw import CONNACK


class ConnectTest(BrokerTestCase):

    def test_connack_bytes(self):
        c = self.raw()
        c.send(mqttraw.connect_packet('exact-bytes', clean=True))
        p = c.read_packet()
        self.assertEqual((p.raw_first, p.body), (0x20, b'\x00\x00'))

    def test_assigned_client_id_with_clean_session(self):
        c = self.raw()
        ack = c.connect('', clean=True)
        self.assertFalse(ack.session_present)
        c.ping()

    def test_empty_client_id_with_persistent_session_rejected(self):
        c = self.raw()
        ack = c.connect('', clean=False, expect_rc=0x02)
        self.assertFalse(ack.session_present)
        self.assertTrue(c.wait_closed(3), 'connection left open after CONNACK 0x02')

    @skip_on_mosquitto("petreld's log")
    def test_log_names_a_peer_that_reset(self):
        # The peer's address is in the log line even when the socket is
        # already gone (reset) by the time the line is written.
        s = socket.create_connection(('127.0.0.1', self.broker.port), timeout=3)
        port = s.getsockname()[1]
        s.sendall(b'\x10\x10\x00')  # the start of a CONNECT
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
        s.close()  # linger 0: RST
        m = self.broker.wait_log(r'connection from 127\.0\.0\.1:%d closed: ' % port)
        self.assertTrue(m, self.broker.tail())

    def test_unsupported_protocol_level(self):
        for level in (3, 6, 0, 255):
            with self.subTest(level=level):
                c = self.raw()
                c.send(mqttraw.connect_packet('lvl%d' % level, level=level))
                p = c.read_packet(3)
                self.assertEqual((p.type, p.body), (CONNACK, b'\x00\x01'))
                self.assertTrue(c.wait_closed(3))

    @skip_on_mosquitto('mosquitto implements MQTT 3.1 (MQIsdp)')
    def test_mqisdp_refused(self):
        c = self.raw()
        c.send(mqttraw.connect_packet('old', proto_name='MQIsdp', level=3))
        p = c.read_packet(3)
        self.assertEqual((p.type, p.body), (CONNACK, b'\x00\x01'))
        self.assertTrue(c.wait_closed(3))

    def test_level5_connect_in_311_shape_is_malformed(self):
        # Level 5 is spoken now: a CONNECT without its property length is a
        # malformed 5.0 CONNECT, answered with a 5.0 CONNACK 0x81.
        c = self.raw()
        c.send(mqttraw.connect_packet('old', level=5))
        p = c.read_packet(3)
        self.assertEqual((p.type, p.body[:2]), (CONNACK, b'\x00\x81'))
        self.assertTrue(c.wait_closed(3))

    def test_session_present_flag(self):
        cid = 'sp-' + str(time.time())
        c = self.raw()
        self.assertFalse(c.connect(cid, clean=False).session_present)
        c.subscribe([(self.topic(), 1)])
        c.disconnect()
        c = self.raw()
        self.assertTrue(c.connect(cid, clean=False).session_present)
        c.disconnect()
        c = self.raw()
        self.assertFalse(c.connect(cid, clean=True).session_present)
        c.disconnect()
        c = self.raw()
        self.assertFalse(c.connect(cid, clean=False).session_present)
        c.send(mqttraw.DISCONNECT_BYTES)
        c.close()
        # leave no persistent session behind
        self.raw().connect(cid, clean=True)

    def test_pingreq_pingresp(self):
        c = self.raw_connected('pinger')
        c.send(mqttraw.PINGREQ_BYTES)
        p = c.read_packet()
        self.assertEqual((p.raw_first, p.body), (0xD0, b''))

    def test_pings_keep_connection_alive(self):
        c = self.raw_connected('ka-pinging', keepalive=1)
        end = time.monotonic() + 3.2
        while time.monotonic() < end:
            c.ping(timeout=2)
            time.sleep(0.5)
        c.ping()

    def test_other_traffic_keeps_connection_alive(self):
        # Any control packet counts, not only PINGREQ.
        c = self.raw_connected('ka-publishing', keepalive=1)
        end = time.monotonic() + 3.2
        while time.monotonic() < end:
            c.publish(self.topic(), b'x', qos=1)
            time.sleep(0.5)
        c.ping()

    def test_keepalive_timeout_closes(self):
        c = self.raw_connected('ka-silent', keepalive=1)
        t0 = time.monotonic()
        self.assertTrue(c.wait_closed(1.5 + harness.KEEPALIVE_SLACK),
                        'silent client not disconnected')
        self.assertGreater(time.monotonic() - t0, 0.9, 'disconnected before its keep alive')

    def test_disconnect_closes_connection(self):
        c = self.raw_connected('bye')
        c.send(mqttraw.DISCONNECT_BYTES)
        self.assertTrue(c.wait_closed(3))
        self.assertEqual(c.before_close, [])

    def test_username_and_password_accepted(self):
        c = self.raw()
        c.connect('with-creds', username='user', password=b'\x00\xffsecret')
        c.ping()
        c2 = self.raw()
        c2.connect('user-only', username='user')
        c2.ping()

    def test_long_utf8_client_id(self):
        c = self.raw()
        c.connect('client-\u00e9\u4e2d\U0001F600-' + 'x' * 200)
        c.ping()

    def test_will_flags_connect(self):
        c = self.raw()
        c.connect('will-ok', will=(self.topic(), b'w', 2, True))
        c.disconnect()

    def test_connect_split_into_single_bytes(self):
        c = self.raw()
        for b in mqttraw.connect_packet('bytewise', keepalive=10):
            c.send(bytes([b]))
            time.sleep(0.005)
        self.assertEqual(c.expect(CONNACK).rc, 0)
        c.ping()

    def test_connect_and_more_in_one_segment(self):
        c = self.raw()
        c.send(mqttraw.connect_packet('coalesced') +
               mqttraw.subscribe_packet(1, [(self.topic(), 0)]) +
               mqttraw.publish_packet(self.topic(), b'me') + mqttraw.PINGREQ_BYTES)
        self.assertEqual(c.expect(CONNACK).rc, 0)
        self.assertEqual(c.expect(mqttraw.SUBACK).granted, [0])
        self.assertEqual(c.expect(mqttraw.PUBLISH).payload, b'me')
        c.expect(mqttraw.PINGRESP)

    def test_many_concurrent_connections(self):
        clients = [self.raw() for _ in range(100)]
        for i, c in enumerate(clients):
            c.send(mqttraw.connect_packet('many-%d' % i))
        for c in clients:
            self.assertEqual(c.expect(CONNACK).rc, 0)
        for c in clients:
            c.disconnect()

    def test_paho_connects(self):
        p = self.paho('paho-connect')
        p.connect()
        self.assertEqual(p.subscribe(self.topic(), 1), [1])
        p.publish(self.topic(), b'hi', qos=1)
        self.assertEqual(p.get().payload, b'hi')
        p.disconnect()

    def test_client_closing_without_disconnect(self):
        c = self.raw_connected('rude')
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
        c.close()  # RST
        w = self.raw_connected('after-rude')
        w.ping()


class MaxKeepaliveTest(BrokerTestCase):
    broker_settings = {'max_keepalive': 30}

    @skip_on_mosquitto('mosquitto 2.0.11 does not apply max_keepalive to 3.1.1 clients')
    def test_keepalive_above_max_rejected(self):
        c = self.raw()
        c.connect('ka-too-big', keepalive=31, expect_rc=0x02)
        self.assertTrue(c.wait_closed(3))
        ok = self.raw()
        ok.connect('ka-max', keepalive=30)
        ok.ping()

    @skip_on_mosquitto('petreld applies max_keepalive to keep alive 0 (issue #14 item 4)')
    def test_keepalive_zero_rejected_under_max(self):
        """0 means no keep alive at all: more than max_keepalive allows."""
        c = self.raw()
        c.connect('ka-zero', keepalive=0, expect_rc=0x02)
        self.assertTrue(c.wait_closed(3))
        self.assertTrue(self.broker.wait_log(r'keep alive 0 \(none\) while max_keepalive', 3))


@skip_on_mosquitto('petreld: 65535 caps nothing')
class DefaultMaxKeepaliveTest(BrokerTestCase):
    def test_keepalive_zero_allowed_by_default(self):
        c = self.raw()
        c.connect('ka-zero-default', keepalive=0)
        c.ping()


if __name__ == '__main__':
    harness.main()
