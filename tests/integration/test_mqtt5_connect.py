"""MQTT 5.0 connections: CONNECT and CONNACK properties, refusals with
reason codes, DISCONNECT in both directions, AUTH, keep alive."""

import os
import time

from harness import BrokerTestCase, OwnBrokers, skip_on_mosquitto
import mqttraw
from mqttraw import (Raw5, CONNACK, DISCONNECT, PINGRESP, P_ASSIGNED_CLIENT_ID,
                     P_SERVER_KEEP_ALIVE, P_RECEIVE_MAXIMUM, P_MAXIMUM_PACKET_SIZE,
                     P_TOPIC_ALIAS_MAXIMUM, P_RETAIN_AVAILABLE, P_WILDCARD_SUB,
                     P_SUB_ID_AVAILABLE, P_SHARED_SUB, P_SESSION_EXPIRY, P_REASON_STRING,
                     P_REQUEST_PROBLEM_INFO, P_AUTH_METHOD, P_MAXIMUM_QOS)
import security_helpers


@skip_on_mosquitto()
class Mqtt5ConnectTest(BrokerTestCase):
    broker_settings = {'max_inflight': 7, 'max_packet_size': '64k', 'max_keepalive': 30,
                       'topic_alias_maximum': 4, 'session_expiry': '1h'}

    def raw5(self, port=None):
        c = Raw5(port or self.port)
        self._clients.append(c)
        return c

    def test_connack_properties(self):
        c = self.raw5()
        ack = c.connect5('props-' + str(time.time()), keepalive=10)
        self.assertFalse(ack.session_present)
        self.assertEqual(ack.prop(P_RECEIVE_MAXIMUM), 7)
        self.assertEqual(ack.prop(P_MAXIMUM_PACKET_SIZE), 64 * 1024)
        self.assertEqual(ack.prop(P_TOPIC_ALIAS_MAXIMUM), 4)
        for p in (P_RETAIN_AVAILABLE, P_WILDCARD_SUB, P_SUB_ID_AVAILABLE, P_SHARED_SUB):
            self.assertEqual(ack.prop(p), 1)
        self.assertIsNone(ack.prop(P_MAXIMUM_QOS))          # 2: not said
        self.assertIsNone(ack.prop(P_ASSIGNED_CLIENT_ID))   # it has its own
        self.assertIsNone(ack.prop(P_SERVER_KEEP_ALIVE))    # 60 > 30 would say so
        c.ping()

    def test_assigned_client_identifier(self):
        c = self.raw5()
        ack = c.connect5('', keepalive=10)
        cid = ack.prop(P_ASSIGNED_CLIENT_ID)
        self.assertTrue(cid and cid.startswith('petrel-'), ack)
        # 5.0 allows an empty id without clean start too
        d = self.raw5()
        ack2 = d.connect5('', clean=False, keepalive=10)
        self.assertNotEqual(ack2.prop(P_ASSIGNED_CLIENT_ID), cid)

    def test_server_keep_alive_caps_instead_of_refusing(self):
        c = self.raw5()
        ack = c.connect5('ka5', keepalive=300)
        self.assertEqual(ack.rc, 0)
        self.assertEqual(ack.prop(P_SERVER_KEEP_ALIVE), 30)
        # 3.1.1 is still refused
        r = self.raw()
        r.connect('ka311', keepalive=300, expect_rc=0x02)

    def test_server_keep_alive_for_keepalive_zero(self):
        """Keep alive 0 (none) is above max_keepalive too: the client is
        told to use max_keepalive, and held to it (issue #14 item 4)."""
        c = self.raw5()
        ack = c.connect5('ka5-zero', keepalive=0)
        self.assertEqual(ack.rc, 0)
        self.assertEqual(ack.prop(P_SERVER_KEEP_ALIVE), 30)
        c.ping()

    def test_session_expiry_capped_by_session_expiry(self):
        c = self.raw5()
        ack = c.connect5('cap-' + str(time.time()), props=[(P_SESSION_EXPIRY, 0xFFFFFFFF)])
        self.assertEqual(ack.prop(P_SESSION_EXPIRY), 3600)
        d = self.raw5()
        ack = d.connect5('nocap-' + str(time.time()), props=[(P_SESSION_EXPIRY, 60)])
        self.assertIsNone(ack.prop(P_SESSION_EXPIRY))

    def test_authentication_method_refused_0x8c(self):
        c = self.raw5()
        ack = c.connect5('auth', props=[(P_AUTH_METHOD, 'SCRAM-SHA-1')], expect_rc=0x8C)
        self.assertTrue(ack.prop(P_REASON_STRING))
        self.assertTrue(c.wait_closed(3))

    def test_auth_packet_is_a_protocol_error(self):
        c = self.raw5()
        c.connect5('authpkt')
        c.send(mqttraw.packet(mqttraw.AUTH, 0, bytes([0x18, 0])))
        d = c.expect_disconnect()
        self.assertEqual(d.rc, 0x82)

    def test_malformed_packet_gets_disconnect_0x81(self):
        c = self.raw5()
        c.connect5('malformed')
        # SUBSCRIBE with reserved flags 0
        c.send(mqttraw.packet(mqttraw.SUBSCRIBE, 0, b'\x00\x01\x00\x00\x01a\x00'))
        d = c.expect_disconnect()
        self.assertEqual(d.rc, 0x81)
        self.assertIn('SUBSCRIBE', d.prop(P_REASON_STRING))

    def test_second_connect_gets_disconnect_0x82(self):
        c = self.raw5()
        c.connect5('twice')
        c.send(mqttraw.connect5_packet('twice'))
        self.assertEqual(c.expect_disconnect().rc, 0x82)

    def test_no_reason_string_when_problem_information_0(self):
        c = self.raw5()
        c.connect5('quiet', props=[(P_REQUEST_PROBLEM_INFO, 0)])
        c.send(mqttraw.connect5_packet('quiet'))
        d = c.expect_disconnect()
        self.assertEqual(d.rc, 0x82)
        self.assertIsNone(d.prop(P_REASON_STRING))

    def test_malformed_connect_gets_connack_0x81(self):
        c = self.raw5()
        # a 3.1.1-shaped body at level 5: no property length
        c.send(mqttraw.connect_packet('old', level=5))
        p = mqttraw.Packet5(c.read_packet(3))
        self.assertEqual((p.type, p.rc), (CONNACK, 0x81))
        self.assertTrue(c.wait_closed(3))

    def test_connect_over_max_packet_size_gets_0x95(self):
        c = self.raw5()
        c.send(mqttraw.connect5_packet('big', will=('t/w', b'x' * 40000, 0, False),
                                       username='u', password=b'p' * 40000))
        p = mqttraw.Packet5(c.read_packet(3))
        self.assertEqual((p.type, p.rc), (CONNACK, 0x95))
        self.assertTrue(c.wait_closed(3))

    def test_packet_over_max_packet_size_gets_disconnect_0x95(self):
        c = self.raw5()
        c.connect5('bigpub')
        c.send(mqttraw.publish5_packet('t/big', b'x' * 70000))
        self.assertEqual(c.expect_disconnect().rc, 0x95)

    def test_session_taken_over_0x8e(self):
        cid = 'takeover-' + str(time.time())
        a = self.raw5()
        a.connect5(cid)
        b = self.raw5()
        b.connect5(cid)
        self.assertEqual(a.expect_disconnect().rc, 0x8E)
        b.ping()

    def test_keep_alive_timeout_0x8d(self):
        c = self.raw5()
        c.connect5('sleepy', keepalive=1)
        t0 = time.monotonic()
        d = c.expect_disconnect(timeout=4)
        self.assertEqual(d.rc, 0x8D)
        self.assertLess(time.monotonic() - t0, 3.5)

    def test_client_disconnect_with_reason(self):
        c = self.raw5()
        c.connect5('bye')
        c.send(mqttraw.disconnect5_packet(0))
        self.assertTrue(c.wait_closed(3))
        self.broker.wait_log(r'client bye disconnected: client sent DISCONNECT \(0x00')

    def test_disconnect_cannot_raise_session_expiry_from_zero(self):
        c = self.raw5()
        c.connect5('zero-exp')
        c.send(mqttraw.disconnect5_packet(0, [(P_SESSION_EXPIRY, 60)]))
        self.assertEqual(c.expect_disconnect().rc, 0x82)

    def test_reason_string_dropped_over_client_maximum_packet_size(self):
        c = self.raw5()
        # 12 bytes: room for a CONNACK with what it must carry here (Receive
        # Maximum, Server Keep Alive), not for a reason string
        c.connect5('tiny', props=[(mqttraw.P_MAXIMUM_PACKET_SIZE, 12)])
        c.send(mqttraw.connect5_packet('tiny'))
        d = c.expect_disconnect()
        self.assertEqual((d.rc, d.props), (0x82, []))

    def test_will_payload_format_checked(self):
        c = self.raw5()
        c.send(mqttraw.connect5_packet('badwill', will=('t/w', b'\xff\xfe', 0, False),
                                       will_props=[(mqttraw.P_PAYLOAD_FORMAT, 1)]))
        p = c.expect5(CONNACK)
        self.assertEqual(p.rc, 0x99)


@skip_on_mosquitto()
class Mqtt5ShutdownTest(BrokerTestCase):

    def test_server_shutting_down_0x8b(self):
        b = self.start_broker()
        c = Raw5(b.port)
        self._clients.append(c)
        c.connect5('shut')
        b.stop()
        d = c.expect_disconnect()
        self.assertEqual(d.rc, 0x8B)


@skip_on_mosquitto()
class Mqtt5AuthTest(OwnBrokers, BrokerTestCase):
    """Password and ACL refusals in 5.0 reason codes."""

    def test_refusals(self):
        files = security_helpers.Files()
        self.addCleanup(files.close)
        pw = files.passwd({'alice': 'secret'})
        b = self.start_broker({'password_file': pw, 'allow_anonymous': 'false'})
        cases = [(dict(username='alice', password=b'wrong'), 0x86),
                 (dict(username='nobody', password=b'x'), 0x86),
                 (dict(), 0x87),
                 (dict(username='alice', password=b'secret'), 0x00)]
        for kw, rc in cases:
            with self.subTest(kw=kw):
                c = Raw5(b.port)
                self._clients.append(c)
                c.connect5('auth5', expect_rc=rc, **kw)
        r = mqttraw.RawClient(b.port)
        self._clients.append(r)
        r.connect('auth311', username='alice', password='wrong', expect_rc=0x05)


if __name__ == '__main__':
    import unittest
    unittest.main()
