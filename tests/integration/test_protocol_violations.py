"""Protocol violations close the offending connection, and only that one.

Each test keeps a subscribed, receiving client (the watcher) connected while
a raw client misbehaves, then checks that the misbehaving connection was
closed, that its will (if it had one and had connected) was published, and
that the watcher still receives messages afterwards.
"""

import struct
import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw
from mqttraw import packet, mqtt_str, CONNACK


class ViolationTest(BrokerTestCase):

    def violate(self, data, connect=True, will=True, allowed_before_close=(),
                timeout=3.0):
        """Sends data (after a good CONNECT when connect=True) and checks
        close + will + watcher.  Returns the packets that came before the
        close."""
        w = self.watcher()
        bad = self.raw()
        will_payload = b'will-of-' + self._testMethodName.encode()
        if connect:
            bad.connect('bad-' + self._testMethodName[:40], keepalive=60,
                        will=(self.topic('will'), will_payload, 0, False) if will else None)
        if isinstance(data, bytes):
            data = [data]
        for chunk in data:
            if not bad.try_send(chunk):
                break
        self.assertTrue(bad.wait_closed(timeout), 'offending connection left open')
        for p in bad.before_close:
            self.assertIn(p.type, allowed_before_close,
                          'unexpected %r before close' % p)
        if connect and will:
            p = w.expect_publish(timeout=3)
            self.assertEqual((p.topic, p.payload), (self.topic('will'), will_payload))
        self.assert_broker_serves(w)
        w.expect_nothing(0.2)
        return bad.before_close

    # ---- first packet
    def test_first_packet_not_connect(self):
        for data in (mqttraw.publish_packet('x/y', b'p'), mqttraw.PINGREQ_BYTES,
                     mqttraw.subscribe_packet(1, [('#', 0)]), mqttraw.DISCONNECT_BYTES):
            with self.subTest(first=data[:1]):
                self.violate(data, connect=False)

    def test_second_connect(self):
        # mosquitto 2.0.11 closes the connection but does not send the will
        self.violate(mqttraw.connect_packet('second'), will=not harness.IS_MOSQUITTO)

    # ---- reserved flags in the fixed header
    def test_subscribe_reserved_flags(self):
        body = struct.pack('!H', 1) + mqtt_str(self.topic()) + b'\x00'
        for flags in (0x00, 0x03, 0x0A):
            with self.subTest(flags=flags):
                self.violate(packet(mqttraw.SUBSCRIBE, flags, body))

    def test_unsubscribe_reserved_flags(self):
        body = struct.pack('!H', 1) + mqtt_str(self.topic())
        self.violate(packet(mqttraw.UNSUBSCRIBE, 0x00, body))

    def test_pubrel_reserved_flags(self):
        # a QoS 2 exchange is pending, then PUBREL arrives with flags 0 (the
        # topic is outside the watcher's filter)
        self.violate([mqttraw.publish_packet('elsewhere/' + self.topic(), b'x', qos=2, pid=7),
                      packet(mqttraw.PUBREL, 0x00, struct.pack('!H', 7))],
                     allowed_before_close=(mqttraw.PUBREC,))

    @skip_on_mosquitto('mosquitto 2.0.11 does not check PINGREQ flags')
    def test_pingreq_reserved_flags(self):
        self.violate(packet(mqttraw.PINGREQ, 0x01))

    def test_disconnect_reserved_flags(self):
        self.violate(packet(mqttraw.DISCONNECT, 0x02))

    # ---- PUBLISH
    def test_publish_qos3(self):
        self.violate(packet(mqttraw.PUBLISH, 0x06, mqtt_str(self.topic()) + b'\x00\x01p'))

    def test_publish_wildcard_topic(self):
        for topic in ('a/+', 'a/#', '#', '+'):
            with self.subTest(topic=topic):
                self.violate(mqttraw.publish_packet(topic, b'p', qos=0))

    def test_publish_empty_topic(self):
        self.violate(mqttraw.publish_packet('', b'p', qos=0))

    def test_publish_qos1_packet_id_0(self):
        self.violate(mqttraw.publish_packet(self.topic(), b'p', qos=1, pid=0))

    def test_publish_qos2_packet_id_0(self):
        self.violate(mqttraw.publish_packet(self.topic(), b'p', qos=2, pid=0))

    def test_topic_invalid_utf8(self):
        for raw_topic in (b't/\xc3\x28', b't/\xff', b't/\xed\xa0\x80', b't/\xc0\xaf'):
            with self.subTest(topic=raw_topic):
                self.violate(packet(mqttraw.PUBLISH, 0, mqtt_str(raw_topic) + b'p'))

    def test_topic_with_nul(self):
        self.violate(packet(mqttraw.PUBLISH, 0, mqtt_str(b't/a\x00b') + b'p'))

    # ---- framing
    def test_remaining_length_five_bytes(self):
        self.violate(b'\x30\xff\xff\xff\xff\x01' + b'\x00' * 16)

    def test_remaining_length_shorter_than_fields(self):
        # SUBSCRIBE whose topic length runs past the end of the packet
        body = struct.pack('!H', 1) + struct.pack('!H', 50) + b'abc' + b'\x00'
        self.violate(packet(mqttraw.SUBSCRIBE, 0x02, body))

    def test_publish_topic_length_past_end(self):
        self.violate(packet(mqttraw.PUBLISH, 0, struct.pack('!H', 200) + b'abc'))

    @skip_on_mosquitto('mosquitto 2.0.11 does not check the PUBACK length')
    def test_puback_wrong_length(self):
        self.violate(packet(mqttraw.PUBACK, 0, b'\x00\x01\x00'))

    @skip_on_mosquitto('mosquitto 2.0.11 ignores a PINGREQ body')
    def test_pingreq_with_body(self):
        self.violate(packet(mqttraw.PINGREQ, 0, b'\x00'))

    def test_truncated_packet_then_close(self):
        # the client sends half a PUBLISH and then closes its socket: the
        # broker must drop it cleanly and publish its will
        w = self.watcher()
        bad = self.raw()
        bad.connect('truncated', will=(self.topic('will'), b'truncated-will', 0, False))
        full = mqttraw.publish_packet(self.topic(), b'0123456789' * 10)
        bad.send(full[:20])
        time.sleep(0.1)
        bad.close()
        p = w.expect_publish(timeout=3)
        self.assertEqual(p.payload, b'truncated-will')
        self.assert_broker_serves(w)

    def test_truncated_connect_then_close(self):
        w = self.watcher()
        bad = self.raw()
        bad.send(mqttraw.connect_packet('half')[:7])
        bad.close()
        self.assert_broker_serves(w)

    # ---- CONNECT
    def test_connect_password_without_username(self):
        self.violate(mqttraw.connect_packet('pw-only', password='secret'), connect=False)

    def test_connect_reserved_flag(self):
        self.violate(mqttraw.connect_packet('reserved', reserved_flag=True), connect=False)

    def test_connect_will_flags_without_will(self):
        for flags in (0x02 | 0x08, 0x02 | 0x20):   # will QoS 1 / will retain, no will flag
            with self.subTest(flags=flags):
                self.violate(mqttraw.connect_packet('wflags', flags=flags), connect=False)

    def test_connect_will_qos3(self):
        pkt = mqttraw.connect_packet('wq3', will=(self.topic('w'), b'x', 3, False))
        self.violate(pkt, connect=False)

    def test_connect_will_topic_wildcard(self):
        pkt = mqttraw.connect_packet('wwild', will=('a/#', b'x', 0, False))
        self.violate(pkt, connect=False, allowed_before_close=(CONNACK,))

    def test_unknown_protocol_name(self):
        for name in ('MQTX', 'mqtt', ''):
            with self.subTest(name=name):
                before = self.violate(mqttraw.connect_packet('proto', proto_name=name),
                                      connect=False, allowed_before_close=(CONNACK,))
                for p in before:
                    self.assertNotEqual(p.rc, 0, 'CONNECT accepted with protocol %r' % name)

    def test_protocol_level_3(self):
        before = self.violate(mqttraw.connect_packet('lvl3', level=3), connect=False,
                              allowed_before_close=(CONNACK,))
        self.assertEqual([(p.type, p.body) for p in before], [(CONNACK, b'\x00\x01')])

    def test_client_id_invalid_utf8(self):
        body = mqtt_str('MQTT') + bytes([4, 0x02]) + b'\x00\x3c' + mqtt_str(b'id\xff')
        self.violate(packet(mqttraw.CONNECT, 0, body), connect=False,
                     allowed_before_close=(CONNACK,))

    def test_connect_remaining_length_too_short(self):
        body = mqttraw.connect_packet('short')[2:]
        self.violate(packet(mqttraw.CONNECT, 0, body[:-3]), connect=False)

    def test_connect_trailing_bytes(self):
        body = mqttraw.connect_packet('trailing')[2:]
        self.violate(packet(mqttraw.CONNECT, 0, body + b'xyz'), connect=False)

    # ---- SUBSCRIBE / UNSUBSCRIBE
    def test_subscribe_no_topics(self):
        self.violate(packet(mqttraw.SUBSCRIBE, 0x02, struct.pack('!H', 1)))

    def test_unsubscribe_no_topics(self):
        self.violate(packet(mqttraw.UNSUBSCRIBE, 0x02, struct.pack('!H', 1)))

    def test_subscribe_qos3(self):
        self.violate(mqttraw.subscribe_packet(1, [(self.topic(), 3)]))

    def test_subscribe_packet_id_0(self):
        self.violate(mqttraw.subscribe_packet(0, [(self.topic(), 0)]))

    # ---- packet types
    def test_packet_type_0(self):
        self.violate(packet(0, 0, b''))

    def test_packet_type_15(self):
        self.violate(packet(15, 0, b''))

    def test_server_only_packets_from_client(self):
        packets = [packet(CONNACK, 0, b'\x00\x00')]
        if not harness.IS_MOSQUITTO:  # mosquitto 2.0.11 ignores these three
            packets += [packet(mqttraw.SUBACK, 0, b'\x00\x01\x00'),
                        packet(mqttraw.UNSUBACK, 0, b'\x00\x01'),
                        packet(mqttraw.PINGRESP, 0, b'')]
        for data in packets:
            with self.subTest(type=data[0] >> 4):
                self.violate(data)

    def test_garbage_after_connect(self):
        self.violate(b'\xde\xad\xbe\xef' * 64)

    def test_violation_does_not_touch_other_sessions(self):
        # a persistent session of another client keeps its subscription and
        # queue while someone else misbehaves
        cid = 'bystander-' + str(time.time())
        by = self.raw_connected(cid, clean=False)
        by.subscribe([(self.topic('q'), 1)])
        by.disconnect()
        self.violate(mqttraw.publish_packet('a/#', b'x'))
        pub = self.raw_connected()
        pub.publish(self.topic('q'), b'queued', qos=1)
        by = self.raw()
        self.assertTrue(by.connect(cid, clean=False).session_present)
        self.assertEqual(by.expect_publish().payload, b'queued')
        by.disconnect()
        self.raw().connect(cid, clean=True)


if __name__ == '__main__':
    harness.main()
