"""MQTT 5.0 subscriptions with paho (protocol=MQTTv5): No Local, Retain As
Published, Retain Handling 0/1/2, Subscription Identifiers (also across a
restart), SUBACK and UNSUBACK reason codes, No Local on a shared
subscription (a protocol error) and shared groups mixing 3.1.1 and 5.0
members."""

import queue
import threading
import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw
import security_helpers as sec


class Paho5(harness.PahoWaits):
    """paho.mqtt.client in MQTT 5.0 mode with blocking helpers and bounded
    waits."""

    label = 'paho v5'

    def __init__(self, port, client_id='', clean_start=True, session_expiry=None,
                 host='127.0.0.1', username=None, password=None):
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        from paho.mqtt.subscribeoptions import SubscribeOptions
        self.mqtt, self.PacketTypes, self.Properties = mqtt, PacketTypes, Properties
        self.SubscribeOptions = SubscribeOptions
        self.host, self.port = host, port
        self.clean_start, self.session_expiry = clean_start, session_expiry
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        if username is not None:
            self.c.username_pw_set(username, password)
        self.messages = queue.Queue()
        self.cond = threading.Condition()
        self.connack = None
        self.acks = {}
        self.disconnect_rc = None
        self.disconnected = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_subscribe = self._on_ack
        self.c.on_unsubscribe = self._on_unsuback
        self.c.on_disconnect = self._on_disconnect
        self.started = False

    def _on_connect(self, client, userdata, flags, rc, props=None):
        with self.cond:
            self.connack = (rc.value if hasattr(rc, 'value') else rc,
                            flags.get('session present', 0))
            self.cond.notify_all()

    def _on_ack(self, client, userdata, mid, rcs, props=None):
        with self.cond:
            self.acks[mid] = [r.value for r in rcs]
            self.cond.notify_all()

    def _on_unsuback(self, client, userdata, mid, props, rcs):
        if not isinstance(rcs, list):
            rcs = [rcs]
        self._on_ack(client, userdata, mid, rcs)

    def _on_disconnect(self, client, userdata, rc, props=None):
        self.disconnect_rc = rc.value if hasattr(rc, 'value') else rc
        self.disconnected.set()

    def connect(self, timeout=5.0):
        props = None
        if self.session_expiry is not None:
            props = self.Properties(self.PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry
        self.c.reconnect_delay_set(60, 120)   # no reconnection during a test
        self.c.connect(self.host, self.port, 60, clean_start=self.clean_start, properties=props)
        self.c.loop_start()
        self.started = True
        self._wait(lambda: self.connack is not None, timeout, 'CONNACK')
        if self.connack[0] != 0:
            raise AssertionError('paho v5: CONNACK reason %r' % (self.connack[0],))
        return self.connack[1]

    def subscribe(self, topics, sub_id=None, timeout=5.0):
        """topics: list of (filter, qos, dict of SubscribeOptions keywords)
        or a single filter.  Returns the SUBACK reason codes."""
        if isinstance(topics, str):
            topics = [(topics, 1, {})]
        props = None
        if sub_id is not None:
            props = self.Properties(self.PacketTypes.SUBSCRIBE)
            props.SubscriptionIdentifier = sub_id
        arg = [(t, self.SubscribeOptions(qos=q, **kw)) for t, q, kw in topics]
        res, mid = self.c.subscribe(arg, properties=props)
        assert res == 0, 'paho subscribe failed: %r' % res
        self._wait(lambda: mid in self.acks, timeout, 'SUBACK')
        return self.acks[mid]

    def unsubscribe(self, filters, timeout=5.0):
        res, mid = self.c.unsubscribe(list(filters))
        assert res == 0
        self._wait(lambda: mid in self.acks, timeout, 'UNSUBACK')
        return self.acks[mid]

    def publish(self, topic, payload, qos=1, retain=False, timeout=5.0):
        self.publish_wait(topic, payload, qos, retain, timeout)

    def sub_ids(self, msg):
        return sorted(getattr(msg.properties, 'SubscriptionIdentifier', []) or [])

    def close(self):
        if self.started:
            self.c.disconnect()
            self.c.loop_stop()
            self.started = False


@skip_on_mosquitto('runs against petreld only (mosquitto 2.0.11 differs in details)')
class SubOptionsTest(BrokerTestCase):

    def p5(self, client_id='', port=None, **kw):
        c = Paho5(port or self.port, client_id, **kw)
        self._clients.append(c)
        c.connect()
        return c

    def test_no_local(self):
        me = self.p5('nl-me')
        other = self.p5('nl-other')
        self.assertEqual(me.subscribe([(self.topic(), 1, {'noLocal': True})]), [1])
        self.assertEqual(other.subscribe([(self.topic(), 1, {'noLocal': True})]), [1])
        me.publish(self.topic(), b'from-me')
        self.assertEqual(other.get().payload, b'from-me')
        me.expect_nothing(0.5)
        other.publish(self.topic(), b'from-other')
        self.assertEqual(me.get().payload, b'from-other')
        other.expect_nothing(0.3)
        # without No Local a client gets its own messages back
        me.subscribe([(self.topic(), 1, {'noLocal': False})])
        me.publish(self.topic(), b'again')
        self.assertEqual(me.get().payload, b'again')

    def test_retain_as_published(self):
        rap = self.p5('rap-yes')
        plain = self.p5('rap-no')
        v311 = self.paho('rap-311')
        v311.connect()
        rap.subscribe([(self.topic(), 1, {'retainAsPublished': True, 'retainHandling': 2})])
        plain.subscribe([(self.topic(), 1, {'retainHandling': 2})])
        v311.subscribe(self.topic(), 1)
        pub = self.p5('rap-pub')
        try:
            pub.publish(self.topic(), b'kept', retain=True)
            self.assertEqual((rap.get().retain, plain.get().retain, v311.get().retain),
                             (True, False, False))
            pub.publish(self.topic(), b'live', retain=False)
            self.assertEqual((rap.get().retain, plain.get().retain), (False, False))
        finally:
            pub.publish(self.topic(), b'', retain=True)

    def test_retain_handling(self):
        pub = self.p5('rh-pub')
        pub.publish(self.topic(), b'stored', retain=True)
        try:
            c = self.p5('rh-sub')
            # 0: sent on every subscribe, new or not
            c.subscribe([(self.topic(), 1, {'retainHandling': 0})])
            m = c.get()
            self.assertEqual((m.payload, m.retain), (b'stored', True))
            c.subscribe([(self.topic(), 1, {'retainHandling': 0})])
            self.assertEqual(c.get().payload, b'stored')
            # 1: only if the subscription did not exist
            c.subscribe([(self.topic(), 1, {'retainHandling': 1})])
            c.expect_nothing(0.5)
            c.unsubscribe([self.topic()])
            c.subscribe([(self.topic(), 1, {'retainHandling': 1})])
            self.assertEqual(c.get().payload, b'stored')
            # 2: never
            d = self.p5('rh-sub2')
            d.subscribe([(self.topic(), 1, {'retainHandling': 2})])
            d.expect_nothing(0.5)
            pub.publish(self.topic(), b'live')
            self.assertEqual(d.get().payload, b'live')
        finally:
            pub.publish(self.topic(), b'', retain=True)

    def test_subscription_identifiers(self):
        c = self.p5('sid')
        c.subscribe([(self.topic('#'), 1, {})], sub_id=5)
        c.subscribe([(self.topic('b'), 1, {})], sub_id=7)
        c.subscribe([(self.topic('+'), 1, {})])          # none
        pub = self.p5('sid-pub')
        pub.publish(self.topic('b'), b'1')
        self.assertEqual(c.sub_ids(c.get()), [5, 7])
        pub.publish(self.topic('c'), b'2')
        self.assertEqual(c.sub_ids(c.get()), [5])
        # replacing a subscription without an identifier removes it
        c.subscribe([(self.topic('#'), 1, {})])
        pub.publish(self.topic('c'), b'3')
        self.assertEqual(c.sub_ids(c.get()), [])
        # a 3.1.1 subscriber of the same topic sees no properties at all
        # (and the broker keeps serving it)
        r = self.raw_connected('sid-311')
        r.subscribe([(self.topic('b'), 1)])
        pub.publish(self.topic('b'), b'4')
        self.assertEqual(r.expect_publish().payload, b'4')
        self.assertEqual(c.sub_ids(c.get()), [7])

    def test_subscription_identifiers_survive_restart(self):
        b = self.start_broker()
        c = Paho5(b.port, 'sid-persist', clean_start=False, session_expiry=600)
        self._clients.append(c)
        c.connect()
        c.subscribe([(self.topic(), 1, {})], sub_id=42)
        c.close()
        b.restart()
        pub = Paho5(b.port, 'sid-persist-pub')
        self._clients.append(pub)
        pub.connect()
        pub.publish(self.topic(), b'queued')
        c = Paho5(b.port, 'sid-persist', clean_start=False, session_expiry=0)
        self._clients.append(c)
        self.assertTrue(c.connect())
        m = c.get()
        self.assertEqual((m.payload, c.sub_ids(m)), (b'queued', [42]))

    def test_suback_reason_codes(self):
        b = self.start_broker({'max_subscriptions_per_client': 3, 'max_qos': 1})
        c = Paho5(b.port, 'rc')
        self._clients.append(c)
        c.connect()
        codes = c.subscribe([('a/b', 2, {}), ('$share//x', 1, {}), ('$share/+/x', 1, {}),
                             ('$share/g/x', 0, {}), ('c', 1, {}), ('d', 1, {})])
        # QoS capped to max_qos; invalid share names: 0x8F; the
        # fourth subscription is over max_subscriptions_per_client: 0x97
        self.assertEqual(codes, [1, 0x8F, 0x8F, 0, 1, 0x97])
        self.assertEqual(c.unsubscribe(['a/b', 'nothing', 'c']), [0x00, 0x11, 0x00])
        self.assertEqual(c.subscribe([('d', 1, {})]), [1])   # room again

    def test_no_local_on_shared_subscription_is_a_protocol_error(self):
        c = self.raw()
        c.send(mqttraw.packet(mqttraw.CONNECT, 0,
                              mqttraw.mqtt_str('MQTT') + bytes([5, 0x02, 0, 60, 0]) +
                              mqttraw.mqtt_str('nl-shared')))
        ack = c.expect(mqttraw.CONNACK)
        self.assertEqual(ack.body[1], 0)
        # SUBSCRIBE pid 1, no properties, "$share/g/t" with No Local + QoS 1
        body = b'\x00\x01\x00' + mqttraw.mqtt_str('$share/g/' + self.topic()) + bytes([0x05])
        c.send(mqttraw.packet(mqttraw.SUBSCRIBE, 0x02, body))
        p = c.read_packet(5)
        self.assertEqual(p.type, mqttraw.DISCONNECT, p)
        self.assertEqual(p.body[0], 0x82)
        self.assertTrue(c.wait_closed(3))

    def test_shared_group_mixing_311_and_5(self):
        v5 = self.p5('mix-5')
        v311 = self.paho('mix-311')
        v311.connect()
        self.assertEqual(v5.subscribe([('$share/mix/' + self.topic(), 1, {})], sub_id=9), [1])
        self.assertEqual(v311.subscribe('$share/mix/' + self.topic(), 1), [1])
        pub = self.p5('mix-pub')
        for i in range(6):
            pub.publish(self.topic(), b'%d' % i)
        got5 = [v5.get() for _ in range(3)]
        got311 = [v311.get() for _ in range(3)]
        self.assertEqual(sorted([m.payload for m in got5 + got311]),
                         [b'%d' % i for i in range(6)])
        self.assertEqual([v5.sub_ids(m) for m in got5], [[9]] * 3)
        v5.expect_nothing(0.3)
        v311.expect_nothing(0.1)


@skip_on_mosquitto('petreld ACL file')
class SubOptionsAclTest(sec.AclBrokerTestCase):
    users = {'u': 'pw'}
    acl_text = 'user u\ntopic read ok/#\n'

    def test_not_authorized_is_0x87(self):
        c = Paho5(self.port, 'acl5', username='u', password='pw')
        self._clients.append(c)
        c.connect()
        self.assertEqual(c.subscribe([('ok/x', 1, {}), ('no/x', 1, {}), ('$share/g/ok/#', 1, {}),
                                      ('$share/g/no/#', 1, {})]),
                         [1, 0x87, 1, 0x87])


if __name__ == '__main__':
    harness.main()
