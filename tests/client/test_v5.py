"""test_v5.py - MQTT 5.0 in libpetrel and the petrel CLI, against a broker
that speaks it (Mosquitto 2.0; petreld once it does): connect properties
and what the CONNACK says, publish properties end to end with a Paho v5
client in both directions (user properties in order), subscription
options, reason codes (PUBACK/SUBACK refusals from an ACL, CONNACK
refusals, a server DISCONNECT), the server's Receive Maximum, and session
resumption by Session Expiry Interval."""

import json
import os
import queue
import re
import socket
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import clienttest as ct

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REFUSED, EXIT_NOT_AUTHORIZED, EXIT_TIMEOUT = range(6)


def petrel(*args, **kw):
    return ct.run([ct.PETREL] + [str(a) for a in args], **kw)


class Paho5:
    """A Paho MQTT 5.0 client on its own network thread; messages on a queue."""

    def __init__(self, port, client_id='', user=None, password=None):
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        if user:
            self.c.username_pw_set(user, password)
        self.msgs = queue.Queue()
        self.subacks = queue.Queue()
        self.connected = queue.Queue()
        self.c.on_message = lambda c, u, m: self.msgs.put(m)
        self.c.on_subscribe = lambda c, u, mid, codes, props: self.subacks.put(codes)
        self.c.on_connect = lambda c, u, f, rc, props: self.connected.put(rc)
        self.c.connect('127.0.0.1', port, keepalive=30)
        self.c.loop_start()
        rc = self.connected.get(timeout=ct.WAIT)
        assert rc == 0, 'paho connect: %s' % rc

    def subscribe(self, topic, qos=1):
        self.c.subscribe(topic, qos)
        return self.subacks.get(timeout=ct.WAIT)

    def publish(self, topic, payload, qos=1, props=None, retain=False):
        info = self.c.publish(topic, payload, qos, retain=retain, properties=props)
        info.wait_for_publish(ct.WAIT)

    def message(self, timeout=ct.WAIT):
        try:
            return self.msgs.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError('paho: no message within %.1fs' % timeout)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class V5Base(ct.SharedBroker):
    broker_kind = 'mosquitto'
    needs_cli = True

    def setUp(self):
        self.cleanup = []

    def tearDown(self):
        for f in reversed(self.cleanup):
            try:
                f()
            except Exception:
                pass

    def topic(self, suffix=''):
        return 'v5/%s/%s%s' % (self.broker_kind, self._testMethodName, suffix)

    def paho(self, **kw):
        p = Paho5(self.port, **kw)
        self.cleanup.append(p.close)
        return p

    def driver(self, *args):
        d = ct.Driver(self.port, '--v5', *args)
        self.cleanup.append(d.kill)
        return d

    def connected_driver(self):
        d = self.driver()
        d.call('connect')
        d.expect('connected')
        return d

    def bg(self, cmd):
        b = ct.Background(cmd)
        self.cleanup.append(b.stop)
        return b

    # ---- libpetrel

    def test_connect_properties_and_connack(self):
        """Empty client id: the CONNACK assigns one; the library reports the
        CONNACK properties."""
        d = self.driver('--id', '', '--cprop', 'session-expiry', '30', '--cuser', 'app', 'test')
        d.call('connect')
        m = d.expect(r'connack(.*)$')
        self.assertRegex(m.group(1), r' p12=\S+')     # assigned client identifier
        d.expect(r'connected sp=0')
        d.close()

    def test_publish_properties_reach_paho(self):
        p = self.paho()
        t = self.topic()
        p.subscribe(t)
        d = self.connected_driver()
        for cmd in ('prop user first 1', 'prop user second 2', 'prop user first 3',
                    'prop ct text/plain', 'prop rt reply/here', 'prop cd corr-42',
                    'prop pfi 1', 'prop exp 60'):
            d.call(cmd)
        d.call('pub5 1 0 %s hello' % t)
        d.expect(r'published id=\d+ rc=PETREL_OK')
        m = p.message()
        self.assertEqual(m.payload, b'hello')
        props = m.properties
        self.assertEqual(props.UserProperty, [('first', '1'), ('second', '2'), ('first', '3')])
        self.assertEqual(props.ContentType, 'text/plain')
        self.assertEqual(props.ResponseTopic, 'reply/here')
        self.assertEqual(props.CorrelationData, b'corr-42')
        self.assertEqual(props.PayloadFormatIndicator, 1)
        self.assertTrue(0 < props.MessageExpiryInterval <= 60)
        d.close()

    def test_received_properties_and_subscription_id(self):
        d = self.connected_driver()
        t = self.topic()
        d.call('prop subid 77')
        d.call('sub5 1 %s' % t)
        d.expect(r'subscribed id=\d+ granted=1')
        p = self.paho()
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [('b', '2'), ('a', '1')]
        props.ContentType = 'application/json'
        props.ResponseTopic = 'resp/t'
        props.CorrelationData = b'xyz'
        p.publish(t, b'{}', props=props)
        m = d.expect(r'msgprops(.*)$')
        got = m.group(1)
        self.assertIn(' up=b:2 up=a:1', got)        # in order
        self.assertIn(' p03=application/json', got)
        self.assertIn(' p08=resp/t', got)
        self.assertIn(' p09=xyz', got)
        self.assertIn(' p0b=77', got)
        d.expect(r'message topic=%s qos=1' % re.escape(t))
        d.close()

    def test_no_local(self):
        d = self.connected_driver()
        t = self.topic()
        d.call('sub5 %d %s' % (1 | 0x04, t))          # QoS 1, no local
        d.expect(r'subscribed id=\d+ granted=1')
        d.call('pub5 1 0 %s mine' % t)
        d.expect(r'published id=\d+ rc=PETREL_OK')
        p = self.paho()
        p.publish(t, b'theirs')
        self.assertEqual(d.messages(1)[0][4], 'theirs')
        d.no_event(r'message .*payload=mine', 0.3)
        d.close()

    def test_v5_options_refused_with_311(self):
        # MQTT 5.0 subscription options on a 3.1.1 client are refused locally.
        d = ct.Driver(self.port)
        self.cleanup.append(d.kill)
        d.send('sub5 %d x' % (1 | 0x04))
        d.expect(r'err sub5 PETREL_EINVAL')
        d.close()

    def subscribed_then_away(self, cid, expiry, t):
        """A persistent 5.0 driver `cid` with Session Expiry Interval
        `expiry` subscribes to t (QoS 1) and disconnects."""
        d = self.driver('--id', cid, '--persistent', '--cprop', 'session-expiry', expiry)
        d.call('connect')
        d.expect('connected sp=0')
        d.call('sub5 1 %s' % t)
        d.expect('subscribed')
        d.call('disconnect')
        d.expect('disconnected reason=PETREL_OK')
        return d

    def test_receive_maximum_and_session_expiry(self):
        """A persistent 5.0 session lives by its Session Expiry Interval:
        with one it is resumed (queued QoS 1 message delivered), with 0 it
        is gone."""
        t = self.topic()
        d = self.subscribed_then_away('v5-sess', '300', t)
        p = self.paho()
        p.publish(t, b'while-away')
        d.call('connect')
        d.expect('connected sp=1')
        self.assertEqual(d.messages(1)[0][4], 'while-away')
        d.close()
        d = self.subscribed_then_away('v5-sess0', '0', t)
        d.call('connect')
        d.expect('connected sp=0')
        d.close()


    # ---- CLI

    def test_cli_pub_every_property(self):
        p = self.paho()
        t = self.topic()
        p.subscribe(t)
        r = petrel('pub', '-V', '5', '-p', self.port, '-t', t, '-m', 'x', '-q', '1',
                   '-D', 'connect', 'session-expiry-interval', '60',
                   '-D', 'connect', 'user-property', 'c', 'd',
                   '-D', 'publish', 'user-property', 'k1', 'v1',
                   '-D', 'publish', 'user-property', 'k2', 'v2',
                   '-D', 'publish', 'response-topic', 'r/t',
                   '-D', 'publish', 'correlation-data', 'cd',
                   '-D', 'publish', 'message-expiry-interval', '30',
                   '-D', 'publish', 'content-type', 'text/plain',
                   '-D', 'publish', 'payload-format-indicator', '1')
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        m = p.message()
        props = m.properties
        self.assertEqual(props.UserProperty, [('k1', 'v1'), ('k2', 'v2')])
        self.assertEqual(props.ResponseTopic, 'r/t')
        self.assertEqual(props.CorrelationData, b'cd')
        self.assertEqual(props.ContentType, 'text/plain')
        self.assertEqual(props.PayloadFormatIndicator, 1)
        self.assertTrue(0 < props.MessageExpiryInterval <= 30)

    def test_cli_sub_shows_properties(self):
        t = self.topic()
        s = self.bg([ct.PETREL, 'sub', '-V', 'mqttv5', '-p', str(self.port), '-d', '-t', t,
                     '-q', '1', '-v', '--properties',
                     '-D', 'subscribe', 'subscription-identifier', '5'])
        s.wait_stderr(r'subscribed: 1 of 1 granted')
        p = self.paho()
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [('z', '1'), ('y', '2')]
        props.ResponseTopic = 'back'
        props.CorrelationData = b'\x00\x01'
        props.ContentType = 'text/plain'
        p.publish(t, b'hi', props=props)
        self.assertEqual(s.line(), '%s hi' % t)
        lines = [s.line() for _ in range(6)]
        self.assertIn('  subscription-identifier: 5', lines)
        self.assertIn('  response-topic: back', lines)
        self.assertIn('  correlation-data: 0x0001', lines)
        self.assertIn('  content-type: text/plain', lines)
        ups = [l for l in lines if l.startswith('  user-property: ')]
        self.assertEqual(ups, ['  user-property: z=1', '  user-property: y=2'])

    def test_cli_sub_json_properties(self):
        t = self.topic()
        s = self.bg([ct.PETREL, 'sub', '-V', '5', '-p', str(self.port), '-d', '-t', t,
                     '--json', '--properties', '-C', '1'])
        s.wait_stderr(r'subscribed: 1 of 1 granted')
        p = self.paho()
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [('k', 'v')]
        props.MessageExpiryInterval = 100
        p.publish(t, b'j', props=props)
        obj = json.loads(s.line())
        self.assertEqual(obj['payload'], 'j')
        self.assertEqual(obj['properties']['user_properties'], [['k', 'v']])
        self.assertTrue(0 < obj['properties']['message_expiry_interval'] <= 100)
        self.assertEqual(s.wait(), EXIT_OK)

    def test_cli_retain_handling_and_as_published(self):
        t = self.topic()
        r = petrel('pub', '-p', self.port, '-t', t, '-m', 'kept', '-r', '-q', '1')
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.cleanup.append(lambda: petrel('pub', '-p', self.port, '-t', t, '-n', '-r'))
        # Retain handling 2: the retained message is not sent on subscribing.
        s = self.bg([ct.PETREL, 'sub', '-V', '5', '-p', str(self.port), '-d', '-t', t, '-v',
                     '--retain-handling', '2', '--retain-as-published', '--json'])
        s.wait_stderr(r'subscribed: 1 of 1 granted')
        # A live retained publication: with retain-as-published the flag stays.
        r = petrel('pub', '-p', self.port, '-t', t, '-m', 'live', '-r', '-q', '1')
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        obj = json.loads(s.line())
        self.assertEqual((obj['payload'], obj['retain']), ('live', True))
        # Retain handling 0 (default) gets the retained one; without
        # retain-as-published a live message has retain false.
        s2 = self.bg([ct.PETREL, 'sub', '-V', '5', '-p', str(self.port), '-d', '-t', t, '--json'])
        s2.wait_stderr(r'subscribed: 1 of 1 granted')
        obj = json.loads(s2.line())
        self.assertEqual((obj['payload'], obj['retain']), ('live', True))
        r = petrel('pub', '-p', self.port, '-t', t, '-m', 'live2', '-r', '-q', '1')
        obj = json.loads(s2.line())
        self.assertEqual((obj['payload'], obj['retain']), ('live2', False))

    def test_cli_usage_errors(self):
        cases = [
            (['pub', '-t', 'x', '-m', 'y', '-D', 'publish', 'content-type', 'a'], 'need MQTT 5.0'),
            (['pub', '-V', '5', '-t', 'x', '-m', 'y', '-D', 'subscribe',
              'subscription-identifier', '1'], 'not accepted by petrel pub'),
            (['pub', '-V', '5', '-t', 'x', '-m', 'y', '-D', 'publish', 'nope', '1'],
             "unknown property 'nope'"),
            (['pub', '-V', '5', '-t', 'x', '-m', 'y', '-D', 'connect', 'content-type', 'a'],
             'not allowed in connect'),
            (['pub', '-V', '5', '-t', 'x', '-m', 'y', '-D', 'publish', 'user-property', 'k'],
             'missing user property value'),
            (['pub', '-V', '5', '-t', 'x', '-m', 'y', '-D', 'publish',
              'message-expiry-interval', 'soon'], 'is not a number'),
            (['pub', '-V', '4', '-t', 'x', '-m', 'y'], 'unknown protocol version'),
            (['sub', '-t', 'x', '--no-local'], '--no-local needs MQTT 5.0'),
            (['sub', '-V', '5', '-t', 'x', '--retain-handling', '3'], 'is not 0, 1 or 2'),
            (['sub', '-V', '5', '-t', 'x', '-D', 'publish', 'content-type', 'a'],
             'not accepted by petrel sub'),
        ]
        for args, msg in cases:
            r = petrel(*args)
            self.assertEqual(r.returncode, EXIT_USAGE, (args, r.stderr))
            self.assertIn(msg, r.stderr, args)


class ScriptedServerDisconnect(ct.unittest.TestCase):
    """Mosquitto 2.0 closes without a DISCONNECT (take-over, shutdown), so a
    raw scripted server sends one: CONNACK, then DISCONNECT 0x8B with a
    Reason String, which the disconnected callback must see."""

    def test_server_disconnect_reported(self):
        srv = socket.socket()
        srv.bind(('127.0.0.1', 0))
        srv.listen(1)
        srv.settimeout(ct.WAIT)
        port = srv.getsockname()[1]

        def serve():
            conn, _ = srv.accept()
            conn.settimeout(ct.WAIT)
            conn.recv(4096)                               # CONNECT
            conn.sendall(bytes([0x20, 3, 0, 0, 0]))      # CONNACK, no properties
            time.sleep(0.2)
            body = bytes([0x8B, 6, 0x1F, 0, 3]) + b'bye'
            conn.sendall(bytes([0xE0, len(body)]) + body)
            time.sleep(0.5)
            conn.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        d = ct.Driver(port, '--v5', '--no-reconnect')
        try:
            d.call('connect')
            d.expect('connected')
            d.expect(r'reason code=0x8b string=bye')
            d.expect(r'disconnected reason=PETREL_ESERVER_DISCONNECT retry=0')
            d.close()
        finally:
            d.kill()
            t.join(5)
            srv.close()


class MosquittoV5(V5Base, ct.unittest.TestCase):
    broker_kind = 'mosquitto'


class PetreldV5(V5Base, ct.unittest.TestCase):
    broker_kind = 'petreld'


class MosquittoV5SmallReceiveMaximum(ct.unittest.TestCase):
    """Receive Maximum 2 from the server (mosquitto: max_inflight_messages)."""

    def setUp(self):
        self.broker = ct.Mosquitto(extra=['max_inflight_messages 2']).start()

    def tearDown(self):
        self.broker.stop()

    def test_receive_maximum(self):
        t = 'v5/rm'
        r = petrel('pub', '-V', '5', '-p', self.broker.port, '-t', t, '-l', '-q', '1', '-d',
                   input=''.join('m%d\n' % i for i in range(20)))
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        outstanding = peak = 0
        for line in r.stderr.splitlines():
            if 'sending PUBLISH' in line:
                outstanding += 1
                peak = max(peak, outstanding)
            elif 'received PUBACK' in line:
                outstanding -= 1
        self.assertEqual(peak, 2, r.stderr)


class MosquittoV5Acl(ct.unittest.TestCase):
    """Reason codes from an ACL: PUBACK 0x87, CONNACK 0x86/0x87."""

    def setUp(self):
        self.broker = ct.Mosquitto(passwords={'alice': 'secret'})
        acl = os.path.join(self.broker.tmp, 'acl')
        with open(acl, 'w') as f:
            f.write('user alice\ntopic readwrite ok/#\n')
        self.broker.extra = ['acl_file %s' % acl]
        self.broker.start()
        self.port = self.broker.port

    def tearDown(self):
        self.broker.stop()

    def test_puback_not_authorized(self):
        d = ct.Driver(self.port, '--v5', '--user', 'alice', '--pass', 'secret')
        try:
            d.call('connect')
            d.expect('connected')
            d.call('pub5 1 0 denied/x nope')
            d.expect(r'reason code=0x87')
            d.expect(r'published id=\d+ rc=PETREL_EREJECTED')
            d.call('pub5 1 0 ok/x fine')
            d.expect(r'published id=\d+ rc=PETREL_OK')
            d.close()
        finally:
            d.kill()

    def test_cli_exit_codes(self):
        r = petrel('pub', '-V', '5', '-p', self.port, '-u', 'alice', '-P', 'secret',
                   '-t', 'denied/x', '-m', 'm', '-q', '1')
        self.assertEqual(r.returncode, EXIT_NOT_AUTHORIZED, r.stderr)
        self.assertIn('not authorized', r.stderr)
        r = petrel('pub', '-V', '5', '-p', self.port, '-u', 'alice', '-P', 'wrong',
                   '-t', 'ok/x', '-m', 'm')
        self.assertEqual(r.returncode, EXIT_NOT_AUTHORIZED, r.stderr)
        # Mosquitto checks its ACL when delivering, not on SUBSCRIBE, so the
        # SUBACK refusal path is covered by test_session.c instead.


if __name__ == '__main__':
    ct.main()
