"""Conformance rules that an outside broker test suite checks (issue #14):
acknowledgements of the wrong kind, malformed topic filters, a CONNACK over
the client's Maximum Packet Size, PUBLISH above the Maximum QoS, topic names
under $share/, properties not allowed in a packet, and expiry / will delay
intervals that must never end early.  Test names carry the normative
statement numbers of MQTT 5.0 (MQTT-x.y.z-n) or 3.1.1 where there is one."""

import struct
import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw
import test_mqtt5_session
from mqttraw import (Raw5, packet, mqtt_str, props_bytes, CONNACK, PUBLISH, PUBACK, PUBREC,
                     PUBREL, PUBCOMP, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT, P_SESSION_EXPIRY,
                     P_WILL_DELAY, P_MAXIMUM_PACKET_SIZE, P_RECEIVE_MAXIMUM, P_MAXIMUM_QOS,
                     P_TOPIC_ALIAS, P_ASSIGNED_CLIENT_ID, P_SUBSCRIPTION_ID, P_MESSAGE_EXPIRY,
                     P_REASON_STRING, P_RETAIN_AVAILABLE, P_USER_PROPERTY, P_WILDCARD_SUB,
                     P_SUB_ID_AVAILABLE, P_SHARED_SUB, P_TOPIC_ALIAS_MAXIMUM)


def size_of(p):
    """Bytes of a packet on the wire (fixed header included)."""
    return 1 + len(mqttraw.varint(len(p.body))) + len(p.body)


class Base(test_mqtt5_session.Base):
    """raw5() and cid() as in test_mqtt5_session, and the checks of a
    closed connection."""

    def assert_disconnect5(self, c, data, rc):
        """Sends data on the 5.0 connection c: DISCONNECT rc, then closed."""
        c.send(data)
        p = c.expect_disconnect()
        self.assertEqual(p.rc, rc, 'DISCONNECT 0x%02x, expected 0x%02x' % (p.rc, rc))

    def assert_closed311(self, c, data, allowed=()):
        c.send(data)
        self.assertTrue(c.wait_closed(3), 'connection left open')
        for p in c.before_close:
            self.assertIn(p.type, allowed, 'unexpected %r before close' % p)


@skip_on_mosquitto()
class WrongKindAckTest(Base):
    """A PUBREC or PUBCOMP for a QoS 1 message, a PUBACK for a QoS 2 one or a
    PUBCOMP before the broker sent PUBREL is a protocol error: MQTT 5.0
    section 4.3 (the QoS 1 sender waits for PUBACK [MQTT-4.3.2-1], the QoS 2
    sender for PUBREC then PUBCOMP [MQTT-4.3.3-1]) and 4.13; DISCONNECT 0x82,
    3.1.1: close [MQTT-4.8.0-1].  An acknowledgement for a packet id that is
    not in flight is not an error (it may be left over from a lost
    connection): ignored, and a PUBREC for an unknown id gets PUBREL 0x92."""

    def delivered(self, qos, level5=True):
        """A client subscribed at qos that was sent one message (returned
        unacknowledged) and the publisher."""
        t = self.topic('%d-%d' % (qos, level5))
        if level5:
            sub = self.raw5()
            sub.subscribe5([(t, qos)])
        else:
            sub = self.raw_connected()
            sub.subscribe([(t, qos)])
        pub = self.raw_connected()
        pub.publish(t, b'm', qos=qos)
        p = sub.expect(PUBLISH)
        self.assertEqual((p.flags >> 1) & 3, qos)
        return sub, pub, struct.unpack('!H', p.body[2 + len(t):4 + len(t)])[0]

    def test_wrong_kind_is_protocol_error_mqtt_4_3_2_and_4_3_3(self):
        # QoS 1 ends with PUBACK [MQTT-4.3.2-1]; QoS 2 takes PUBREC, then
        # PUBCOMP once the broker sent PUBREL [MQTT-4.3.3-1]
        for qos, kind in ((1, PUBREC), (1, PUBCOMP), (2, PUBACK), (2, PUBCOMP)):
            with self.subTest(qos=qos, kind=mqttraw.TYPE_NAMES[kind]):
                sub, _, pid = self.delivered(qos)
                self.assert_disconnect5(sub, mqttraw.ack5_packet(kind, pid), 0x82)

    def test_wrong_kind_closes_311(self):
        for qos, kind in ((1, PUBREC), (1, PUBCOMP), (2, PUBACK)):
            with self.subTest(qos=qos, kind=kind):
                sub, _, pid = self.delivered(qos, level5=False)
                self.assert_closed311(sub, mqttraw.ack_packet(kind, pid))

    def test_right_kind_still_completes(self):
        sub, pub, pid = self.delivered(2)
        sub.send(mqttraw.ack5_packet(PUBREC, pid))
        self.assertEqual(sub.expect5(PUBREL).pid, pid)
        # a repeated PUBREC is answered with PUBREL again (not an error)
        sub.send(mqttraw.ack5_packet(PUBREC, pid))
        self.assertEqual(sub.expect5(PUBREL).pid, pid)
        sub.send(mqttraw.ack5_packet(PUBCOMP, pid))
        sub.ping()

    def test_unknown_ids_are_not_errors(self):
        sub = self.raw5()
        sub.send(mqttraw.ack5_packet(PUBACK, 4321))
        sub.send(mqttraw.ack5_packet(PUBCOMP, 4322))
        sub.send(mqttraw.ack5_packet(PUBREC, 4323))
        rel = sub.expect5(PUBREL)
        self.assertEqual((rel.pid, rel.rc), (4323, 0x92))
        sub.ping()
        c = self.raw_connected()
        c.send(mqttraw.ack_packet(PUBACK, 99))
        c.send(mqttraw.ack_packet(PUBCOMP, 98))
        c.ping()

    def test_pubrel_for_unknown_id_is_not_an_error(self):
        # MQTT 5.0 3.7.2.1: PUBCOMP 0x92 Packet Identifier not found
        c = self.raw5()
        c.send(mqttraw.ack5_packet(PUBREL, 555))
        comp = c.expect5(PUBCOMP)
        self.assertEqual((comp.pid, comp.rc), (555, 0x92))
        c.ping()


@skip_on_mosquitto()
class MalformedFilterTest(Base):
    """A topic filter that breaks the wildcard rules [MQTT-4.7.1-1],
    [MQTT-4.7.1-2] or is empty [MQTT-4.7.3-1] makes the SUBSCRIBE or
    UNSUBSCRIBE a malformed packet: DISCONNECT 0x81 (3.1.1: the connection is
    closed [MQTT-4.8.0-1]) and none of its filters is applied.  0x8F stays
    the answer for a well-formed filter the server refuses (a bad share
    name)."""

    BAD = ('', '#/a', 'a/#b', '+a', 'a/b+', 'a#')

    def test_subscribe_malformed_filter_mqtt_4_7_1(self):
        for f in self.BAD:
            with self.subTest(filter=f):
                c = self.raw5()
                ok = self.topic('ok')
                self.assert_disconnect5(
                    c, mqttraw.subscribe5_packet(1, [(ok, 1), (f, 1)]), 0x81)

    def test_unsubscribe_malformed_filter_mqtt_4_7_1(self):
        for f in self.BAD:
            with self.subTest(filter=f):
                c = self.raw5()
                body = struct.pack('!H', 2) + props_bytes(()) + mqtt_str('ok') + mqtt_str(f)
                self.assert_disconnect5(c, packet(UNSUBSCRIBE, 0x02, body), 0x81)

    def test_malformed_filter_closes_311(self):
        for f in self.BAD:
            with self.subTest(filter=f):
                c = self.raw_connected()
                self.assert_closed311(c, mqttraw.subscribe_packet(1, [(f, 0)]))
                c = self.raw_connected()
                self.assert_closed311(c, mqttraw.unsubscribe_packet(2, [f]))

    def test_bad_share_name_is_still_0x8f(self):
        c = self.raw5()
        ack = c.subscribe5([('$share//x', 1), ('$share/+/x', 1), ('$share/g', 1),
                            (self.topic(), 1)])
        self.assertEqual(ack.codes, [0x8F, 0x8F, 0x8F, 1])
        c.ping()


@skip_on_mosquitto()
class PropertyNotAllowedTest(Base):
    """MQTT 5.0 2.2.2.2: a packet with a property identifier not valid for
    its packet type is a Malformed Packet: CONNACK or DISCONNECT 0x81, the
    same for every packet type."""

    def test_connect_mqtt_2_2_2_2(self):
        c = Raw5(self.port)
        self._clients.append(c)
        c.send(mqttraw.connect5_packet('', props=[(P_ASSIGNED_CLIENT_ID, 'x')]))
        self.assertEqual(c.expect5(CONNACK).rc, 0x81)
        self.assertTrue(c.wait_closed(3))

    def test_will_properties_mqtt_2_2_2_2(self):
        c = Raw5(self.port)
        self._clients.append(c)
        c.send(mqttraw.connect5_packet('', will=('w', 'x', 0, False),
                                       will_props=[(P_SESSION_EXPIRY, 5)]))
        self.assertEqual(c.expect5(CONNACK).rc, 0x81)
        self.assertTrue(c.wait_closed(3))

    def test_publish_mqtt_2_2_2_2(self):
        self.assert_disconnect5(self.raw5(), mqttraw.publish5_packet(
            self.topic(), 'x', props=[(P_SESSION_EXPIRY, 1)]), 0x81)

    def test_acks_mqtt_2_2_2_2(self):
        for kind in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            with self.subTest(kind=kind):
                self.assert_disconnect5(self.raw5(), mqttraw.ack5_packet(
                    kind, 1, props=[(P_TOPIC_ALIAS, 1)]), 0x81)

    def test_subscribe_mqtt_2_2_2_2(self):
        self.assert_disconnect5(self.raw5(), mqttraw.subscribe5_packet(
            1, [(self.topic(), 0)], props=[(P_MESSAGE_EXPIRY, 3)]), 0x81)

    def test_unsubscribe_mqtt_2_2_2_2(self):
        for prop in ((P_SUBSCRIPTION_ID, 3), (P_MESSAGE_EXPIRY, 3)):
            with self.subTest(prop=prop):
                body = struct.pack('!H', 1) + props_bytes([prop]) + mqtt_str(self.topic())
                self.assert_disconnect5(self.raw5(), packet(UNSUBSCRIBE, 0x02, body), 0x81)

    def test_disconnect_mqtt_2_2_2_2(self):
        self.assert_disconnect5(self.raw5(), mqttraw.disconnect5_packet(
            0, props=[(P_TOPIC_ALIAS, 1)]), 0x81)

    def test_auth_mqtt_2_2_2_2(self):
        body = bytes([0x18]) + props_bytes([(P_TOPIC_ALIAS, 1)])
        self.assert_disconnect5(self.raw5(), packet(mqttraw.AUTH, 0, body), 0x81)

    def test_twice_is_still_protocol_error(self):
        # "It is a Protocol Error to include ... more than once"
        self.assert_disconnect5(self.raw5(), mqttraw.publish5_packet(
            self.topic(), 'x', props=[(P_MESSAGE_EXPIRY, 1), (P_MESSAGE_EXPIRY, 2)]), 0x82)


@skip_on_mosquitto()
class MaximumQosTest(Base):
    """With max_qos = 1 the CONNACK says Maximum QoS 1 [MQTT-3.2.2-9]; a 5.0
    PUBLISH above it is a protocol error, DISCONNECT 0x9B [MQTT-3.2.2-11]
    and 5.0 3.2.2.3.4; a 5.0 will above it refuses the connection, CONNACK
    0x9B [MQTT-3.2.2-12].  3.1.1 has no way to say so: its messages are taken
    and forwarded at max_qos."""
    broker_settings = {'max_qos': 1}

    def test_connack_announces_maximum_qos_mqtt_3_2_2_9(self):
        self.assertEqual(self.raw5().ack.prop(P_MAXIMUM_QOS), 1)

    def test_publish_above_maximum_qos_mqtt_3_2_2_11(self):
        c = self.raw5()
        self.assertEqual(c.publish5(self.topic(), 'one', 1).rc, 0)
        self.assert_disconnect5(c, mqttraw.publish5_packet(self.topic(), 'two', 2, pid=9), 0x9B)

    def test_publish_above_maximum_qos_sends_will(self):
        w = self.raw5()
        w.subscribe5([(self.topic('w'), 0)])
        c = self.raw5(will=(self.topic('w'), 'gone', 0, False))
        self.assert_disconnect5(c, mqttraw.publish5_packet(self.topic(), 'two', 2, pid=9), 0x9B)
        self.assertEqual(w.expect_publish5().payload, b'gone')

    def test_will_above_maximum_qos_mqtt_3_2_2_12(self):
        c = Raw5(self.port)
        self._clients.append(c)
        c.send(mqttraw.connect5_packet(self.cid('wq'), will=(self.topic('w'), 'x', 2, False)))
        self.assertEqual(c.expect5(CONNACK).rc, 0x9B)
        self.assertTrue(c.wait_closed(3))
        # QoS 1 is fine
        self.raw5(self.cid('wq1'), will=(self.topic('w'), 'x', 1, False))

    def test_311_publish_at_qos2_is_taken_at_max_qos(self):
        sub = self.raw_connected()
        sub.subscribe([(self.topic(), 2)], expect_granted=[1])
        pub = self.raw_connected()
        pub.publish(self.topic(), b'q2', qos=2)
        p = sub.expect_publish()
        self.assertEqual((p.payload, p.qos), (b'q2', 1))


@skip_on_mosquitto()
class ShareTopicNameTest(Base):
    """"$share/..." is the form of a shared subscription filter (5.0 4.8.2)
    and topics starting with '$' belong to the server (4.7.2): a PUBLISH to
    such a topic name is refused.  5.0 QoS 1/2: PUBACK/PUBREC 0x90 (Topic
    Name invalid: well-formed but not accepted); QoS 0 and 3.1.1: dropped
    (acknowledged, the connection stays).  A will there refuses the
    CONNECT: 5.0 CONNACK 0x90, 3.1.1 0x05.  Nothing reaches the group."""

    def group(self):
        """A member of the shared subscription the forged topics aim at."""
        m = self.raw5()
        m.subscribe5([('$share/g/' + self.topic(), 1), (self.topic(), 1)])
        return m

    def test_publish_5_qos1_qos2_refused_0x90(self):
        m = self.group()
        c = self.raw5()
        self.assertEqual(c.publish5('$share/g/' + self.topic(), 'x', 1).rc, 0x90)
        self.assertEqual(c.publish5('$share/g/' + self.topic(), 'x', 2).rc, 0x90)
        c.publish5('$share/g/' + self.topic(), 'x', 0)
        c.ping()
        # '$share' alone and '$sharex/...' are ordinary topic names
        self.assertEqual(c.publish5('$share', 'y', 1).rc, 0)
        self.assertEqual(c.publish5('$sharex/' + self.topic(), 'y', 1).rc, 0)
        m.expect_nothing(0.3)

    def test_publish_311_dropped(self):
        m = self.group()
        c = self.raw_connected()
        c.publish('$share/g/' + self.topic(), b'x', qos=1)
        c.publish('$share/g/' + self.topic(), b'x', qos=2)
        c.publish('$share/g/' + self.topic(), b'x', qos=0, retain=True)
        c.ping()
        m.expect_nothing(0.3)
        # nothing was retained either
        r = self.raw5()
        r.subscribe5([('$share/#', 0)])
        r.expect_nothing(0.3)

    def test_will_refused(self):
        c = Raw5(self.port)
        self._clients.append(c)
        c.send(mqttraw.connect5_packet(self.cid('w5'), will=('$share/g/x', 'w', 0, False)))
        self.assertEqual(c.expect5(CONNACK).rc, 0x90)
        self.assertTrue(c.wait_closed(3))
        c = self.raw()
        c.send(mqttraw.connect_packet(self.cid('w4'), will=('$share/g/x', b'w', 0, False)))
        self.assertEqual(c.expect(CONNACK).body[1], 5)
        self.assertTrue(c.wait_closed(3))


@skip_on_mosquitto()
class IntervalsNeverEndEarlyTest(Base):
    """No Session Expiry Interval or Will Delay Interval may end before it
    has passed (MQTT 5.0 3.1.2.11.2, 3.1.3.2.2): a session with expiry 2 s
    and a will delay of 5 s ends 2 s after its connection, and its will goes
    then [MQTT-3.1.3-9], not earlier (the broker used to count from the
    whole second, so up to a second early) and not at the will delay.
    Several clients close at spread fractions of a second, so that a
    rounding error shows whatever the phase of the broker's timers."""

    N = 8
    SPREAD = 0.125

    def will_times(self, expiry, delay):
        """N clients with this Session Expiry and Will Delay close SPREAD s
        apart; returns {payload: seconds from its close to its will}."""
        w = self.raw5()
        w.subscribe5([(self.topic('#'), 0)])
        clients = [self.raw5(self.cid('w%d' % i), props=[(P_SESSION_EXPIRY, expiry)],
                             will=(self.topic('w%d' % i), str(i), 0, False),
                             will_props=[(P_WILL_DELAY, delay)]) for i in range(self.N)]
        closed = {}
        for i, c in enumerate(clients):
            c.close()
            closed[str(i).encode()] = time.monotonic()
            time.sleep(self.SPREAD)
        elapsed = {}
        deadline = time.monotonic() + min(expiry, delay) + 4
        while len(elapsed) < self.N and time.monotonic() < deadline:
            m = w.expect_publish5(timeout=max(0.1, deadline - time.monotonic()))
            elapsed[m.payload] = round(time.monotonic() - closed[m.payload], 3)
        self.assertEqual(len(elapsed), self.N, elapsed)
        return elapsed

    def test_will_goes_when_session_ends_not_before_mqtt_3_1_3_9(self):
        elapsed = self.will_times(expiry=2, delay=5)
        early = {k: v for k, v in elapsed.items() if v < 2.0}
        self.assertEqual(early, {}, 'wills published before the 2 s session expiry')
        late = {k: v for k, v in elapsed.items() if v > 3.5}
        self.assertEqual(late, {}, 'wills published long after the session ended')

    def test_will_delay_not_early_mqtt_3_1_3_9(self):
        elapsed = self.will_times(expiry=30, delay=1)
        self.assertEqual({k: v for k, v in elapsed.items() if not 1.0 <= v <= 1.6}, {})

    def test_session_kept_for_its_whole_interval(self):
        cids = [self.cid('keep%d' % i) for i in range(self.N)]
        closed = []
        for cid in cids:
            c = self.raw5(cid, props=[(P_SESSION_EXPIRY, 2)])
            c.subscribe5([(self.topic(), 1)])
            c.close()
            closed.append(time.monotonic())
            time.sleep(self.SPREAD)
        present = []
        for cid, t in zip(cids, closed):
            time.sleep(max(0.0, t + 1.9 - time.monotonic()))
            c = self.raw5(cid, clean=False, props=[(P_SESSION_EXPIRY, 2)])
            present.append(c.ack.session_present)
        self.assertEqual(present, [True] * self.N,
                         'sessions gone before their 2 s expiry interval')


@skip_on_mosquitto()
class ConnackFitsTest(Base):
    """The server MUST NOT send a packet over the client's Maximum Packet
    Size [MQTT-3.1.2-24], CONNACK included: it leaves out the properties it
    may (Reason String [MQTT-3.2.2-19], User Properties [MQTT-3.2.2-20],
    those whose absence means the same, then offers like Topic Alias
    Maximum), never what the client needs (Receive Maximum, Assigned Client
    Identifier...).  If even that does not fit, nothing is sent and the
    connection is closed."""
    broker_settings = {'max_inflight': 50, 'topic_alias_maximum': 5}

    def connect_limited(self, limit, client_id=''):
        c = Raw5(self.port)
        self._clients.append(c)
        c.send(mqttraw.connect5_packet(client_id, props=[(P_MAXIMUM_PACKET_SIZE, limit)]))
        return c

    def test_full_connack_when_it_fits(self):
        c = self.connect_limited(1000)
        p = c.read_packet()
        ack = mqttraw.Packet5(p)
        self.assertEqual(ack.rc, 0)
        for prop in (P_RECEIVE_MAXIMUM, P_MAXIMUM_PACKET_SIZE, P_TOPIC_ALIAS_MAXIMUM,
                     P_RETAIN_AVAILABLE, P_WILDCARD_SUB, P_SUB_ID_AVAILABLE, P_SHARED_SUB,
                     P_ASSIGNED_CLIENT_ID):
            self.assertIsNotNone(ack.prop(prop), prop)

    def test_connack_within_maximum_packet_size_mqtt_3_1_2_24(self):
        full = mqttraw.Packet5(self.connect_limited(1000, client_id='full').read_packet())

        def size_of_full(p):
            return 2 + len(p.body)
        for limit in (60, 40, 30, 20, 12, 8):
            with self.subTest(limit=limit):
                c = self.connect_limited(limit, client_id=self.cid('fit%d' % limit)[:6])
                p = c.read_packet()
                self.assertEqual(p.type, CONNACK)
                self.assertLessEqual(size_of(p), limit)
                ack = mqttraw.Packet5(p)
                self.assertEqual(ack.rc, 0)
                # what the client must know stays
                self.assertEqual(ack.prop(P_RECEIVE_MAXIMUM), 50)
                # what goes, goes in order: availability flags before offers
                flags = [ack.prop(f) for f in (P_RETAIN_AVAILABLE, P_WILDCARD_SUB,
                                               P_SUB_ID_AVAILABLE, P_SHARED_SUB)]
                offers = [ack.prop(f) for f in (P_TOPIC_ALIAS_MAXIMUM, P_MAXIMUM_PACKET_SIZE)]
                if any(f is not None for f in flags):
                    self.assertNotIn(None, offers)
                if limit >= size_of_full(full):
                    self.assertEqual(ack.props, full.props)
                c.ping()
            if limit == 8:
                self.assertEqual(ack.props, [(P_RECEIVE_MAXIMUM, 50)])

    def test_assigned_client_id_is_never_left_out(self):
        # 'petrel-' + 16 hex digits does not fit in 20 bytes: no CONNACK
        # can be sent, the connection is closed
        c = self.connect_limited(20)
        self.assertTrue(c.wait_closed(3), 'connection left open')
        self.assertEqual(c.before_close, [])
        c = self.connect_limited(40)
        ack = c.expect5(CONNACK)
        self.assertTrue(ack.prop(P_ASSIGNED_CLIENT_ID).startswith('petrel-'))
        self.assertEqual(ack.prop(P_RETAIN_AVAILABLE), None)

    def test_refusing_connack_drops_reason_string(self):
        c = Raw5(self.port)
        self._clients.append(c)
        c.send(mqttraw.connect5_packet('x', props=[(P_MAXIMUM_PACKET_SIZE, 8),
                                                   (mqttraw.P_AUTH_METHOD, 'SCRAM')]))
        p = c.read_packet()
        self.assertLessEqual(size_of(p), 8)
        self.assertEqual(mqttraw.Packet5(p).rc, 0x8C)


@skip_on_mosquitto()
class InflightOnResumeTest(Base):
    """Issue #14 item 17: when a 5.0 session resumes, the messages it had in
    flight are resent within the client's Receive Maximum [MQTT-3.3.4-9]
    (the QoS 2 ones waiting for PUBCOMP count too); those whose Message
    Expiry Interval has run out are removed instead [MQTT-3.3.2-5], and
    those now over the client's Maximum Packet Size are discarded as if
    delivered (5.0 3.1.2.11.4, counted under
    $SYS/broker/limits/client_maximum_packet_size), so that none holds a
    slot of the window forever."""
    broker_settings = {'max_inflight': 20, 'sys_interval': 1}

    def session(self, cid, props=(), port=None):
        return self.raw5(cid, clean=False, props=[(P_SESSION_EXPIRY, 300)] + list(props),
                         port=port)

    def subscribed(self, name, qos, props=(), port=None):
        """This test's topic, a client id, its 5.0 session subscribed to the
        topic at qos, and a publisher."""
        t, cid = self.topic(), self.cid(name)
        s = self.session(cid, props, port=port)
        s.subscribe5([(t, qos)])
        return t, cid, s, self.raw5(port=port)

    def unacked(self, c, n):
        """n PUBLISHes, not acknowledged."""
        return [c.expect5(PUBLISH) for _ in range(n)]

    def collect(self, c, n, timeout=3.0):
        """Payloads of the PUBLISHes that arrive (acknowledged) until n or
        a pause of `timeout`."""
        got = []
        while len(got) < n:
            try:
                got.append(c.expect_publish5(timeout=timeout).payload)
            except mqttraw.Timeout:
                break
        return got

    def test_expired_in_flight_removed_not_resent_mqtt_3_3_2_5(self):
        b = self.start_broker({'sys_interval': 1})
        t, cid, s, pub = self.subscribed('exp', 1, [(P_RECEIVE_MAXIMUM, 5)], port=b.port)
        for i in range(5):
            pub.publish5(t, 'old%d' % i, 1, props=[(P_MESSAGE_EXPIRY, 1)])
        self.unacked(s, 5)
        s.close()
        time.sleep(1.6)
        new = [b'new%d' % i for i in range(5)]
        for p in new:
            self.assertEqual(pub.publish5(t, p, 1).rc, 0)
        # the scenario: 0 of 5 over two reconnects
        s = self.session(cid, [(P_RECEIVE_MAXIMUM, 5)], port=b.port)
        got = self.collect(s, 5)
        s.close()
        s = self.session(cid, [(P_RECEIVE_MAXIMUM, 5)], port=b.port)
        got += self.collect(s, 5, timeout=0.5)
        self.assertEqual(got, new)
        # their rows went too: nothing comes back after a restart
        s.close()
        b.restart()
        s = self.session(cid, [(P_RECEIVE_MAXIMUM, 5)], port=b.port)
        s.expect_nothing(0.5)

    def test_over_maximum_packet_size_discarded_on_resume(self):
        t, cid, s, pub = self.subscribed('big', 1)
        for i in range(3):
            pub.publish5(t, b'%d' % i * 3000, 1)
        self.unacked(s, 3)
        s.close()
        small = [b'small%d' % i for i in range(3)]
        for p in small:
            pub.publish5(t, p, 1)
        before = self.sys_value(self.broker, '$SYS/broker/limits/client_maximum_packet_size')
        s = self.session(cid, [(P_MAXIMUM_PACKET_SIZE, 1000), (P_RECEIVE_MAXIMUM, 3)])
        self.assertEqual(self.collect(s, 3), small)
        self.assertGreaterEqual(self.sys_value(
            self.broker, '$SYS/broker/limits/client_maximum_packet_size', at_least=before + 3),
            before + 3)

    def test_resend_honours_receive_maximum_mqtt_3_3_4_9(self):
        t, cid, s, pub = self.subscribed('rm', 1)
        sent = [b'm%02d' % i for i in range(20)]
        for p in sent:
            pub.publish5(t, p, 1)
        self.unacked(s, 20)
        s.close()
        s = self.session(cid, [(P_RECEIVE_MAXIMUM, 2)])
        outstanding, got, most = [], [], 0
        while len(got) < 20:
            p = s.expect5(PUBLISH, timeout=3)
            outstanding.append(p.pid)
            got.append(p.payload)
            most = max(most, len(outstanding))
            self.assertLessEqual(len(outstanding), 2, 'more un-acked than Receive Maximum')
            if len(outstanding) == 2 or len(got) == 20:
                # nothing more may come until one is acknowledged
                try:
                    extra = s.read_packet(timeout=0.2)
                    self.fail('sent beyond Receive Maximum 2: %r' % extra)
                except mqttraw.Timeout:
                    pass
                s.send(mqttraw.ack5_packet(PUBACK, outstanding.pop(0)))
        self.assertEqual(got, sent)
        self.assertEqual(most, 2)

    def test_pubrel_waiting_counts_against_receive_maximum_mqtt_3_3_4_9(self):
        t, cid, s, pub = self.subscribed('q2', 2)
        for i in range(4):
            pub.publish5(t, 'q%d' % i, 2)
        ps = self.unacked(s, 4)
        for p in ps[:2]:        # received: the broker releases them
            s.send(mqttraw.ack5_packet(PUBREC, p.pid))
            self.assertEqual(s.expect5(PUBREL).pid, p.pid)
        s.close()
        s = self.session(cid, [(P_RECEIVE_MAXIMUM, 2)])
        rels = [s.expect5(PUBREL).pid for _ in range(2)]
        self.assertEqual(rels, [p.pid for p in ps[:2]])
        # two QoS 2 messages still un-completed: no PUBLISH yet
        s.expect_nothing(0.3)
        s.send(mqttraw.ack5_packet(PUBCOMP, rels[0]))
        p = s.expect5(PUBLISH)
        self.assertEqual((p.payload, p.dup, p.pid), (b'q2', True, ps[2].pid))
        s.expect_nothing(0.3)
        s.send(mqttraw.ack5_packet(PUBCOMP, rels[1]))
        p = s.expect5(PUBLISH)
        self.assertEqual((p.payload, p.pid), (b'q3', ps[3].pid))


if __name__ == '__main__':
    harness.main()
