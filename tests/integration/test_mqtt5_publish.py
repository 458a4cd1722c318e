"""MQTT 5.0 publishing: forwarded properties, topic aliases both ways,
payload format check, receive maximum both ways, maximum packet size,
message expiry (live, queued, retained), reason codes on acknowledgements,
and 3.1.1 <-> 5.0 interoperation on the same topics."""

import time
import threading

from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw
from mqttraw import (Raw5, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, P_PAYLOAD_FORMAT,
                     P_MESSAGE_EXPIRY, P_CONTENT_TYPE, P_RESPONSE_TOPIC, P_CORRELATION_DATA,
                     P_USER_PROPERTY, P_TOPIC_ALIAS, P_TOPIC_ALIAS_MAXIMUM, P_SUBSCRIPTION_ID,
                     P_RECEIVE_MAXIMUM, P_MAXIMUM_PACKET_SIZE, P_SESSION_EXPIRY)

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes


class Base(BrokerTestCase):

    def assert_publish_disconnects(self, topic, props, rc):
        """A PUBLISH of 'x' to topic with these properties, from a fresh
        5.0 client, is answered with DISCONNECT reason rc."""
        pub = self.raw5()
        pub.send(mqttraw.publish5_packet(topic, 'x', props=props))
        self.assertEqual(pub.expect_disconnect().rc, rc)

    def sub_and_pub(self, qos):
        """This test's topic, a 5.0 client subscribed to it at qos and
        another one to publish."""
        t = self.topic()
        sub = self.raw5()
        sub.subscribe5([(t, qos)])
        return t, sub, self.raw5()

    def raw5(self, client_id='', props=(), port=None, **kw):
        c = Raw5(port or self.port)
        self._clients.append(c)
        c.connect5(client_id, props=props, **kw)
        return c


@skip_on_mosquitto()
class Mqtt5PublishTest(Base):
    broker_settings = {'topic_alias_maximum': 3, 'max_inflight': 20}

    def test_properties_forwarded_in_order(self):
        t, sub, pub = self.sub_and_pub(1)
        props = [(P_USER_PROPERTY, ('b', '2')), (P_CONTENT_TYPE, 'text/plain'),
                 (P_USER_PROPERTY, ('a', '1')), (P_RESPONSE_TOPIC, 'reply/here'),
                 (P_CORRELATION_DATA, b'\x00\x01corr'), (P_PAYLOAD_FORMAT, 1),
                 (P_USER_PROPERTY, ('b', '3'))]
        self.assertEqual(pub.publish5(t, 'hello', 1, props=props).rc, 0)
        m = sub.expect_publish5()
        self.assertEqual(m.payload, b'hello')
        fwd = [(k, v) for k, v in m.props if k not in (P_TOPIC_ALIAS,)]
        self.assertEqual(fwd, props)

    def test_311_subscriber_gets_no_properties(self):
        t = self.topic()
        old = self.raw_connected()
        old.subscribe([(t, 1)])
        pub = self.raw5()
        pub.publish5(t, 'x', 1, props=[(P_USER_PROPERTY, ('k', 'v')), (P_MESSAGE_EXPIRY, 60)])
        m = old.expect_publish()
        self.assertEqual((m.topic, m.payload, m.qos), (t, b'x', 1))

    def test_topic_alias_client_to_server(self):
        t, sub, pub = self.sub_and_pub(0)
        pub.publish5(t, 'one', props=[(P_TOPIC_ALIAS, 3)])
        pub.publish5('', 'two', props=[(P_TOPIC_ALIAS, 3)])
        self.assertEqual([sub.expect_publish5().payload for _ in range(2)], [b'one', b'two'])

    def test_topic_alias_unknown_is_protocol_error(self):
        self.assert_publish_disconnects('', [(P_TOPIC_ALIAS, 2)], 0x82)

    def test_topic_alias_over_maximum_0x94(self):
        self.assert_publish_disconnects(self.topic(), [(P_TOPIC_ALIAS, 4)], 0x94)

    def test_topic_alias_server_to_client(self):
        t = self.topic()
        sub = self.raw5(props=[(P_TOPIC_ALIAS_MAXIMUM, 5)])
        sub.subscribe5([(t + '/#', 0)])
        pub = self.raw5()
        for sfx in ('a', 'a', 'b', 'a', 'c', 'd', 'd'):
            pub.publish5(t + '/' + sfx, sfx)
        got = [sub.expect_publish5() for _ in range(7)]
        # the broker uses at most min(5, its own 3) aliases
        seen = {}
        for m in got:
            alias = m.prop(P_TOPIC_ALIAS)
            name = m.payload.decode()
            if m.topic:
                self.assertEqual(m.topic, t + '/' + name)
                if alias:
                    self.assertNotIn(alias, seen)
                    seen[alias] = name
            else:
                self.assertEqual(seen[alias], name)
        self.assertEqual(sorted(seen.values()), ['a', 'b', 'c'])
        self.assertEqual([m.topic == '' for m in got],
                         [False, True, False, True, False, False, False])

    def test_no_alias_without_topic_alias_maximum(self):
        t, sub, pub = self.sub_and_pub(0)
        pub.publish5(t, '1')
        pub.publish5(t, '2')
        for _ in range(2):
            m = sub.expect_publish5()
            self.assertEqual((m.topic, m.prop(P_TOPIC_ALIAS)), (t, None))

    def test_payload_format_invalid_utf8(self):
        t, sub, pub = self.sub_and_pub(1)
        ack = pub.publish5(t, b'\xc3\x28', 1, props=[(P_PAYLOAD_FORMAT, 1)])
        self.assertEqual(ack.rc, 0x99)
        rec = pub.publish5(t, b'\xc3\x28', 2, props=[(P_PAYLOAD_FORMAT, 1)])
        self.assertEqual(rec.rc, 0x99)
        sub.expect_nothing(0.3)
        self.assertEqual(pub.publish5(t, 'é', 1, props=[(P_PAYLOAD_FORMAT, 1)]).rc, 0)
        self.assertEqual(sub.expect_publish5().payload, 'é'.encode())
        pub.send(mqttraw.publish5_packet(t, b'\xff', props=[(P_PAYLOAD_FORMAT, 1)]))
        self.assertEqual(pub.expect_disconnect().rc, 0x99)

    def test_subscription_identifier_from_client_is_protocol_error(self):
        self.assert_publish_disconnects(self.topic(), [(P_SUBSCRIPTION_ID, 1)], 0x82)

    def test_sys_publish_not_authorized(self):
        pub = self.raw5()
        self.assertEqual(pub.publish5('$SYS/forged', 'x', 1).rc, 0x87)

    def test_pubrel_unknown_id_0x92(self):
        c = self.raw5()
        c.send(mqttraw.ack5_packet(PUBREL, 77))
        comp = c.expect5(PUBCOMP)
        self.assertEqual((comp.pid, comp.rc), (77, 0x92))
        c.send(mqttraw.publish5_packet(self.topic(), 'x', 2, pid=78))
        self.assertEqual(c.expect5(PUBREC).rc, 0)
        c.send(mqttraw.ack5_packet(PUBREL, 78))
        self.assertEqual(c.expect5(PUBCOMP).rc, 0)

    def test_client_maximum_packet_size(self):
        t = self.topic()
        sub = self.raw5(props=[(P_MAXIMUM_PACKET_SIZE, 100)])
        sub.subscribe5([(t, 1)])
        pub = self.raw5()
        pub.publish5(t, b'x' * 200, 0)
        pub.publish5(t, b'y' * 200, 1)
        pub.publish5(t, b'small', 1)
        m = sub.expect_publish5()
        self.assertEqual(m.payload, b'small')
        sub.expect_nothing(0.3)

    def test_client_receive_maximum(self):
        t = self.topic()
        sub = self.raw5(props=[(P_RECEIVE_MAXIMUM, 2)])
        sub.subscribe5([(t, 1)])
        pub = self.raw5()
        for i in range(5):
            pub.publish5(t, str(i), 1)
        first = [sub.expect_publish5(ack=False) for _ in range(2)]
        sub.expect_nothing(0.4)
        sub.send(mqttraw.ack5_packet(PUBACK, first[0].pid))
        third = sub.expect_publish5(ack=False)
        self.assertEqual(third.payload, b'2')
        sub.expect_nothing(0.3)

    def test_message_expiry_remaining_forwarded(self):
        t, sub, pub = self.sub_and_pub(0)
        pub.publish5(t, 'x', props=[(P_MESSAGE_EXPIRY, 100)])
        self.assertIn(sub.expect_publish5().prop(P_MESSAGE_EXPIRY), (99, 100))

    def test_message_expiry_of_queued_message(self):
        t = self.topic()
        cid = 'expq-' + str(time.time())
        sub = self.raw5(cid, clean=True, props=[(P_SESSION_EXPIRY, 60)])
        sub.subscribe5([(t, 1)])
        sub.send(mqttraw.disconnect5_packet(0))
        self.assertTrue(sub.wait_closed(3))
        pub = self.raw5()
        pub.publish5(t, 'short', 1, props=[(P_MESSAGE_EXPIRY, 1)])
        pub.publish5(t, 'long', 1, props=[(P_MESSAGE_EXPIRY, 60)])
        time.sleep(2.2)
        sub = self.raw5(cid, clean=False, props=[(P_SESSION_EXPIRY, 60)])
        m = sub.expect_publish5()
        self.assertEqual(m.payload, b'long')
        self.assertTrue(55 <= m.prop(P_MESSAGE_EXPIRY) <= 58, m)
        sub.expect_nothing(0.3)

    def test_message_expiry_of_retained_message(self):
        t = self.topic()
        pub = self.raw5()
        pub.publish5(t + '/short', 's', 1, retain=True, props=[(P_MESSAGE_EXPIRY, 1)])
        pub.publish5(t + '/long', 'l', 1, retain=True, props=[(P_MESSAGE_EXPIRY, 60)])
        time.sleep(2.2)
        sub = self.raw5()
        sub.subscribe5([(t + '/#', 1)])
        m = sub.expect_publish5()
        self.assertEqual((m.payload, m.retain), (b'l', True))
        self.assertLessEqual(m.prop(P_MESSAGE_EXPIRY), 58)
        sub.expect_nothing(0.3)


@skip_on_mosquitto()
class Mqtt5ReceiveMaximumTest(Base):
    broker_settings = {'max_inflight': 2}

    def test_inbound_receive_maximum_exceeded_0x93(self):
        c = self.raw5()
        t = self.topic()
        for pid in (1, 2):
            c.send(mqttraw.publish5_packet(t, 'x', 2, pid=pid))
            self.assertEqual(c.expect5(PUBREC).pid, pid)
        c.send(mqttraw.publish5_packet(t, 'x', 2, pid=3))
        self.assertEqual(c.expect_disconnect().rc, 0x93)

    def test_within_receive_maximum_is_fine(self):
        c = self.raw5()
        t = self.topic()
        for pid in range(1, 10):
            c.send(mqttraw.publish5_packet(t, 'x', 2, pid=pid))
            self.assertEqual(c.expect5(PUBREC).pid, pid)
            c.send(mqttraw.ack5_packet(PUBREL, pid))
            self.assertEqual(c.expect5(PUBCOMP).pid, pid)


class PahoV5:
    """A paho MQTT 5.0 client with bounded waits."""

    def __init__(self, test, port, client_id, props=None):
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        self.msgs = []
        self.cv = threading.Condition()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p=None: self.connected.set()
        self.c.on_subscribe = lambda c, u, mid, rcs, p=None: self.subscribed.set()
        self.c.on_message = self._on_message
        self.c.connect('127.0.0.1', port, 30, properties=props)
        self.c.loop_start()
        test.addCleanup(self.close)
        assert self.connected.wait(5), 'paho v5 did not connect'

    def _on_message(self, c, u, m):
        with self.cv:
            self.msgs.append(m)
            self.cv.notify_all()

    def subscribe(self, topic, qos):
        self.subscribed.clear()
        self.c.subscribe(topic, qos)
        assert self.subscribed.wait(5)

    def get(self, timeout=5):
        with self.cv:
            assert self.cv.wait_for(lambda: self.msgs, timeout), 'no message'
            return self.msgs.pop(0)

    def publish(self, topic, payload, qos=0, retain=False, props=None):
        info = self.c.publish(topic, payload, qos, retain, properties=props)
        info.wait_for_publish(5)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


@skip_on_mosquitto()
class Mqtt5InteropTest(Base):
    """3.1.1 and 5.0 clients on the same topics, each way, QoS 0/1/2."""

    def test_311_to_5_and_back(self):
        t = self.topic()
        v5 = PahoV5(self, self.port, 'interop-v5')
        v5.subscribe(t + '/to5', 2)
        old = self.raw_connected('interop-311')
        old.subscribe([(t + '/to311', 2)])
        for qos in (0, 1, 2):
            old.publish(t + '/to5', 'from311-%d' % qos, qos)
            m = v5.get()
            self.assertEqual((m.topic, m.payload, m.qos), (t + '/to5', b'from311-%d' % qos, qos))
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [('k', 'v')]
            props.MessageExpiryInterval = 30
            v5.publish(t + '/to311', 'from5-%d' % qos, qos, props=props)
            p = old.expect_publish()
            self.assertEqual((p.payload, p.qos), (b'from5-%d' % qos, qos))

    def test_paho_v5_properties_end_to_end(self):
        t = self.topic()
        a = PahoV5(self, self.port, 'paho-a')
        a.subscribe(t, 1)
        b = PahoV5(self, self.port, 'paho-b')
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = t + '/reply'
        props.CorrelationData = b'cid-42'
        props.ContentType = 'application/json'
        props.PayloadFormatIndicator = 1
        props.UserProperty = [('x', '1'), ('y', '2'), ('x', '3')]
        b.publish(t, '{"a": 1}', 1, props=props)
        m = a.get()
        self.assertEqual(m.payload, b'{"a": 1}')
        self.assertEqual(m.properties.ResponseTopic, t + '/reply')
        self.assertEqual(m.properties.CorrelationData, b'cid-42')
        self.assertEqual(m.properties.ContentType, 'application/json')
        self.assertEqual(m.properties.UserProperty, [('x', '1'), ('y', '2'), ('x', '3')])

    def test_retained_across_versions(self):
        t = self.topic()
        old = self.raw_connected()
        old.publish(t + '/a', 'r311', 1, retain=True)
        pub5 = self.raw5()
        pub5.publish5(t + '/b', 'r5', 1, retain=True, props=[(P_CONTENT_TYPE, 'c')])
        sub5 = self.raw5()
        sub5.subscribe5([(t + '/#', 1)])
        got = sorted((m.topic, m.payload, m.retain) for m in
                     (sub5.expect_publish5(), sub5.expect_publish5()))
        self.assertEqual(got, [(t + '/a', b'r311', True), (t + '/b', b'r5', True)])
        sub311 = self.raw_connected()
        sub311.subscribe([(t + '/#', 1)])
        got = sorted((m.topic, m.payload) for m in
                     (sub311.expect_publish(), sub311.expect_publish()))
        self.assertEqual(got, [(t + '/a', b'r311'), (t + '/b', b'r5')])

    def test_wills_across_versions(self):
        t = self.topic()
        w5 = self.raw5()
        w5.subscribe5([(t + '/#', 1)])
        w311 = self.raw_connected()
        w311.subscribe([(t + '/#', 1)])
        old = self.raw_connected('will-311', will=(t + '/w311', 'bye311', 1, False))
        old.close()
        new = Raw5(self.port)
        self._clients.append(new)
        new.connect5('will-5', will=(t + '/w5', 'bye5', 1, False),
                     will_props=[(P_USER_PROPERTY, ('why', 'test'))])
        new.close()
        got5 = {m.topic: m for m in (w5.expect_publish5(), w5.expect_publish5())}
        self.assertEqual(got5[t + '/w311'].payload, b'bye311')
        self.assertEqual(got5[t + '/w5'].prop(P_USER_PROPERTY), ('why', 'test'))
        got = sorted(m.payload for m in (w311.expect_publish(), w311.expect_publish()))
        self.assertEqual(got, [b'bye311', b'bye5'])


if __name__ == '__main__':
    import unittest
    unittest.main()
