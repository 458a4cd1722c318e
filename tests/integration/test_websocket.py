"""MQTT over WebSocket listeners (`listen = ... ws`, `wss`): the handshake
(its refusals answered in HTTP), MQTT split across frames at every byte
and packed several to a frame, masking required, ping/pong, close codes
(1000, 1002, 1003, 1009), a slow handshake cut by connect_timeout, and
interop with mosquitto clients over TCP on the same broker at QoS 0, 1 and
2, over ws and wss.  The WebSocket client is tests/integration/wsraw.py.
petreld only."""

import socket
import ssl
import struct
import time
import unittest

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw
import tls_helpers
import wsraw
from wsraw import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, WsRawClient

CONNECT_TIMEOUT = 2
ORIGIN = 'https://app.example'


def rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def ws_port(broker, index):
    return broker.listeners[index][1]


@skip_on_mosquitto('petreld WebSocket listeners')
class WebSocketTest(BrokerTestCase):
    """A plain listener (first, for the harness and mosquitto clients), a
    ws one on /mqtt, a ws one with allowed_origins on /ws, and a wss one."""

    @classmethod
    def setUpClass(cls):
        cls.certs = c = tls_helpers.Certs()
        cls.addClassCleanup(c.close)
        cls.broker_settings = {
            'listen': ['127.0.0.1:0',
                       '127.0.0.1:0 ws',
                       '127.0.0.1:0 ws ws_path=/ws allowed_origins=%s,http://other' % ORIGIN,
                       '127.0.0.1:0 wss certfile=%s keyfile=%s' % (c.server, c.server_key)],
            'connect_timeout': CONNECT_TIMEOUT,
            'max_packet_size': 10000,
            'sys_interval': 1,
        }
        super().setUpClass()
        cls.ws = ws_port(cls.broker, 1)
        cls.ws_origin = ws_port(cls.broker, 2)
        cls.wss = ws_port(cls.broker, 3)

    def wsc(self, port=None, **kw):
        c = WsRawClient(port or self.ws, **kw)
        self._clients.append(c)
        return c

    def wss_client(self, **kw):
        ctx = tls_helpers.client_context(self.certs.ca)
        raw = socket.create_connection(('127.0.0.1', self.wss), timeout=5)
        sock = ctx.wrap_socket(raw, server_hostname='localhost')
        c = WsRawClient(self.wss, sock=sock, **kw)
        self._clients.append(c)
        return c

    def raw_http(self, text, port=None):
        """Sends raw bytes as a handshake; (status, headers, socket)."""
        s = socket.create_connection(('127.0.0.1', port or self.ws), timeout=5)
        self._clients.append(s)
        s.sendall(text)
        status, headers, _ = wsraw.read_http_head(s)
        return status, headers, s

    def assert_closed_by_server(self, s, timeout=5.0):
        deadline = time.monotonic() + timeout
        s.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                if not s.recv(65536):
                    return
            except socket.timeout:
                continue
            except OSError:
                return
        self.fail('server did not close the connection')

    def test_listeners_logged(self):
        log = self.broker.log_text()
        for port, what in ((self.ws, 'ws), path /mqtt, origins any'),
                           (self.ws_origin, 'ws), path /ws, origins %s,http://other' % ORIGIN),
                           (self.wss, 'wss), path /mqtt, origins any')):
            self.assertIn('listener 127.0.0.1:%d: MQTT over WebSocket (%s' % (port, what), log)

    # ---- handshake
    def test_handshake_accepted_and_pubsub(self):
        c = self.wsc()
        c.connect('ws-basic')
        c.subscribe([(self.topic(), 1)], expect_granted=[1])
        c.publish(self.topic(), b'hello', qos=1, pid=7, wait=False)
        got = {}
        while len(got) < 2:
            p = c.read_packet()
            got[p.type] = p
        self.assertEqual(got[mqttraw.PUBLISH].payload, b'hello')
        self.assertEqual(got[mqttraw.PUBACK].pid, 7)
        c.send(mqttraw.ack_packet(mqttraw.PUBACK, got[mqttraw.PUBLISH].pid))
        c.send(mqttraw.DISCONNECT_BYTES)
        # DISCONNECT, then the server ends the WebSocket with 1000
        self.assertEqual(c.wait_close(), 1000)

    def test_handshake_refusals(self):
        cases = [
            (dict(key=False), 400),
            (dict(key='not-a-key'), 400),
            (dict(version='8'), 426),
            (dict(protocols=None), 400),
            (dict(protocols='mqttv3.1'), 400),
            (dict(path='/other'), 404),
        ]
        for kw, status in cases:
            text, _ = wsraw.request(self.ws, **kw)
            got, headers, s = self.raw_http(text)
            self.assertEqual(got, status, kw)
            if status == 426:
                self.assertEqual(headers.get('sec-websocket-version'), '13')
            self.assert_closed_by_server(s)
        # several subprotocols offered: mqtt is chosen
        c = self.wsc(protocols='mqttv3.1, mqtt')
        c.connect('ws-protocols')
        # not an upgrade at all
        got, _, s = self.raw_http(b'GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n')
        self.assertEqual(got, 426)
        self.assertGreaterEqual(self.sys_value(self.broker, '$SYS/broker/limits/websocket_handshake',
                                               at_least=7), 7)

    def test_origins(self):
        text, _ = wsraw.request(self.ws_origin, path='/ws', origin='https://evil.example')
        got, _, s = self.raw_http(text, self.ws_origin)
        self.assertEqual(got, 403)
        self.assert_closed_by_server(s)
        for origin in (ORIGIN, 'http://other', None):
            c = self.wsc(self.ws_origin, path='/ws', origin=origin)
            c.connect('')
            c.disconnect()
        # the listener without allowed_origins takes any origin
        c = self.wsc(origin='https://evil.example')
        c.connect('')

    def test_oversized_handshake(self):
        text, _ = wsraw.request(self.ws, extra=['X-Pad-%d: %s' % (i, 'a' * 100) for i in range(100)])
        got, _, s = self.raw_http(text)
        self.assertEqual(got, 431)
        self.assert_closed_by_server(s)

    def test_pipelined_bytes_after_request(self):
        """The client's first frames may come with the request."""
        text, key = wsraw.request(self.ws)
        connect = mqttraw.connect_packet('ws-pipelined')
        s = socket.create_connection(('127.0.0.1', self.ws), timeout=5)
        self._clients.append(s)
        s.sendall(text + wsraw.frame(OP_BINARY, connect))
        status, headers, rest = wsraw.read_http_head(s)
        self.assertEqual(status, 101)
        self.assertEqual(headers['sec-websocket-accept'], wsraw.accept_for(key))
        c = WsRawClient.__new__(WsRawClient)
        c.sock, c.buf, c.eof, c.next_pid = s, bytearray(), False, 1
        c.wsbuf, c.pongs, c.close_code, c.frames, c.split = bytearray(rest), [], None, [], None
        ack = c.expect(mqttraw.CONNACK)
        self.assertEqual(ack.rc, 0)

    def test_slow_handshake_times_out(self):
        s = socket.create_connection(('127.0.0.1', self.ws), timeout=5)
        self._clients.append(s)
        text, _ = wsraw.request(self.ws)
        s.sendall(text[:20])          # and nothing more
        start = time.monotonic()
        self.assert_closed_by_server(s, timeout=CONNECT_TIMEOUT + 4)
        self.assertLess(time.monotonic() - start, CONNECT_TIMEOUT + 4)
        # meanwhile others are served
        c = self.wsc()
        c.connect('')

    # ---- frames
    def test_split_at_every_byte(self):
        """CONNECT + SUBSCRIBE + PUBLISH cut into two frames at each byte."""
        topic = self.topic()
        stream = (mqttraw.connect_packet('') + mqttraw.subscribe_packet(1, [(topic, 0)]) +
                  mqttraw.publish_packet(topic, b'x' * 20))
        for cut in range(1, len(stream)):
            c = WsRawClient(self.ws)
            try:
                c.send_frame(OP_BINARY, stream[:cut])
                c.send_frame(OP_BINARY, stream[cut:])
                self.assertEqual(c.expect(mqttraw.CONNACK).rc, 0, cut)
                c.expect(mqttraw.SUBACK)
                self.assertEqual(c.expect_publish().payload, b'x' * 20, cut)
            finally:
                c.close()

    def test_one_byte_frames_and_fragments(self):
        """Every byte its own frame, and a fragmented message (binary +
        continuations) with a ping between the fragments."""
        c = self.wsc(split=[1] * 200)
        c.connect('')
        c.subscribe([(self.topic(), 0)], expect_granted=[0])
        pub = mqttraw.publish_packet(self.topic(), b'fragmented')
        c.send_frame(OP_BINARY, pub[:3], fin=False)
        c.send_frame(OP_PING, b'in-between')
        c.send_frame(OP_CONT, pub[3:7], fin=False)
        c.send_frame(OP_CONT, pub[7:], fin=True)
        self.assertEqual(c.expect_publish().payload, b'fragmented')
        self.assertIn(b'in-between', c.pongs)

    def test_packets_packed_in_one_frame(self):
        topic = self.topic()
        c = self.wsc()
        c.send_frame(OP_BINARY, mqttraw.connect_packet('') +
                     mqttraw.subscribe_packet(1, [(topic, 1)]) +
                     b''.join(mqttraw.publish_packet(topic, b'm%d' % i, qos=1, pid=10 + i)
                              for i in range(5)))
        c.expect(mqttraw.CONNACK)
        c.expect(mqttraw.SUBACK)
        got = set()
        acks = 0
        while len(got) < 5 or acks < 5:
            p = c.read_packet()
            if p.type == mqttraw.PUBLISH:
                got.add(p.payload)
                c.send(mqttraw.ack_packet(mqttraw.PUBACK, p.pid))
            elif p.type == mqttraw.PUBACK:
                acks += 1
        self.assertEqual(got, {b'm%d' % i for i in range(5)})

    def test_ping_pong(self):
        c = self.wsc()
        c.connect('')
        for i in range(20):
            c.send_frame(OP_PING, b'p%d' % i)
        c.ping()  # an MQTT PINGREQ behind them
        deadline = time.monotonic() + 5
        while len(c.pongs) < 20 and time.monotonic() < deadline:
            try:
                c.read_packet(timeout=0.2)
            except mqttraw.Timeout:
                pass
        self.assertEqual(c.pongs, [b'p%d' % i for i in range(20)])

    def test_output_framed_while_the_socket_is_full(self):
        """A subscriber that stops reading (a small receive buffer): the
        broker keeps writing what the socket takes, and the messages that
        come meanwhile, then a pong, are framed after the frames still
        unsent; once it reads again every message arrives whole, in order."""
        topic = self.topic()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        sock.connect(('127.0.0.1', self.ws))
        c = self.wsc(sock=sock)
        c.connect('ws-slow-reader')
        c.subscribe([(topic, 1)], expect_granted=[1])
        pub = self.raw_connected('ws-fast-writer')
        n, size = 800, 8000
        for i in range(n):
            pub.publish(topic, b'%05d' % i + bytes([i % 251]) * (size - 5), qos=1)
            if i == n // 2:
                c.send_frame(OP_PING, b'while-full')
        for i in range(n):
            p = c.expect_publish(timeout=10)
            self.assertEqual(p.payload[:5], b'%05d' % i)
            self.assertEqual(p.payload[5:], bytes([i % 251]) * (size - 5))
        self.assertIn(b'while-full', c.pongs)

    def _held_frame_cut(self, send_more):
        """A client (keep alive 0) that keeps a frame or a fragmented
        message open holds wslay's reading context: that counts as an
        incomplete packet, so partial_packet_timeout (1 s here) ends it
        even while complete packets keep coming in its fragments."""
        b = self.start_broker({'listen': ['127.0.0.1:0', '127.0.0.1:0 ws'],
                               'partial_packet_timeout': 1, 'sys_interval': 1})
        c = WsRawClient(ws_port(b, 1))
        self._clients.append(c)
        c.connect('ws-holder', keepalive=0)
        start = time.monotonic()
        send_more(c)
        self.assertEqual(c.wait_close(timeout=6), 1000)
        took = time.monotonic() - start
        self.assertGreaterEqual(took, 0.8)
        self.assertLess(took, 5)
        self.assertGreaterEqual(self.sys_value(b, '$SYS/broker/limits/partial_packet_timeout',
                                               at_least=1), 1)

    def test_half_a_frame_header_is_cut(self):
        self._held_frame_cut(lambda c: c.sock.sendall(b'\x82'))

    def test_endless_fragmented_message_is_cut(self):
        def trickle(c):
            c.send_frame(OP_BINARY, mqttraw.PINGREQ_BYTES, fin=False)
            c.expect(mqttraw.PINGRESP)
            # a PINGREQ in each fragment: complete packets, answered, in
            # a message that never ends
            for _ in range(40):
                time.sleep(0.2)
                try:
                    c.send_frame(OP_CONT, mqttraw.PINGREQ_BYTES, fin=False)
                    c.expect(mqttraw.PINGRESP, timeout=2)
                except (mqttraw.Closed, OSError):
                    return
        self._held_frame_cut(trickle)

    def _expect_close(self, c, code):
        self.assertEqual(c.wait_close(), code)
        self.assertTrue(c.wait_eof(), 'TCP not closed after the close frame')

    def test_unmasked_frame_closed_1002(self):
        c = self.wsc()
        c.connect('')
        c.sock.sendall(wsraw.frame(OP_BINARY, mqttraw.packet(12, 0), mask=False))
        self._expect_close(c, 1002)

    def test_text_frame_closed_1003(self):
        c = self.wsc()
        c.send_frame(OP_TEXT, b'hello')
        self._expect_close(c, 1003)

    def test_fragmented_control_frame_closed_1002(self):
        c = self.wsc()
        c.connect('')
        c.send_frame(OP_PING, b'half', fin=False)
        self._expect_close(c, 1002)

    def test_bad_opcode_and_rsv_closed_1002(self):
        for kw in (dict(opcode=3), dict(opcode=OP_BINARY, rsv=4), dict(opcode=OP_CONT)):
            c = self.wsc()
            op = kw.pop('opcode')
            c.send_frame(op, b'\x00', **kw)
            self._expect_close(c, 1002)

    def test_oversized_frame_closed_1009(self):
        c = self.wsc()
        c.connect('')
        # max_packet_size 10000 + 4096 slack: a frame header announcing more
        # is refused with its first payload bytes, before the rest comes
        head = struct.pack('!BBH', 0x80 | OP_BINARY, 0x80 | 126, 20000) + b'\0\0\0\0'
        c.sock.sendall(head + b'\0' * 16)
        self._expect_close(c, 1009)
        self.assertGreaterEqual(self.sys_value(self.broker, '$SYS/broker/limits/websocket_frame_size',
                                               at_least=1), 1)

    def test_mqtt_packet_too_large_over_ws(self):
        """max_packet_size applies to MQTT packets over several frames:
        the WebSocket closes with 1009."""
        c = self.wsc(split=[4000] * 10)
        c.connect('')
        c.send(mqttraw.publish_packet(self.topic(), b'y' * 20000))
        self._expect_close(c, 1009)

    def test_mqtt_protocol_error_closes_1002(self):
        """A second CONNECT: 3.1.1 closes at once, 5.0 hears DISCONNECT
        0x82 first; the WebSocket ends with 1002 either way."""
        c = self.wsc()
        c.connect('')
        c.send(mqttraw.connect_packet(''))
        self._expect_close(c, 1002)
        c = self.wsc()
        c.send(mqttraw.connect5_packet(''))
        self.assertEqual(c.expect(mqttraw.CONNACK).type, mqttraw.CONNACK)
        c.send(mqttraw.connect5_packet(''))
        d = c.expect(mqttraw.DISCONNECT)
        self.assertEqual(d.body[0], 0x82)
        self._expect_close(c, 1002)

    def test_client_close_publishes_will(self):
        watcher = self.watcher()
        c = self.wsc()
        c.connect('ws-will', will=(self.topic('will'), b'gone', 0, False))
        c.send_frame(OP_CLOSE, struct.pack('!H', 1000))
        self.assertEqual(c.wait_close(), 1000)   # the echo
        self.assertTrue(c.wait_eof())
        p = watcher.expect_publish()
        self.assertEqual(p.payload, b'gone')

    def test_disconnect_then_close_in_one_write_publishes_no_will(self):
        """As browsers end: DISCONNECT and the close frame together.  The
        DISCONNECT counts (no will); a PUBLISH before a bare close frame
        is delivered, then the will."""
        watcher = self.watcher()
        c = self.wsc()
        c.connect('ws-clean-end', will=(self.topic('will'), b'must-not-come', 0, False))
        c.sock.sendall(wsraw.frame(OP_BINARY, mqttraw.DISCONNECT_BYTES) +
                       wsraw.frame(OP_CLOSE, struct.pack('!H', 1000)))
        self.assertEqual(c.wait_close(), 1000)
        c = self.wsc()
        c.connect('ws-dirty-end', will=(self.topic('will'), b'dirty', 0, False))
        c.sock.sendall(wsraw.frame(OP_BINARY, mqttraw.publish_packet(self.topic('will'), b'last')) +
                       wsraw.frame(OP_CLOSE, struct.pack('!H', 1001)))
        self.assertEqual(watcher.expect_publish().payload, b'last')
        self.assertEqual(watcher.expect_publish().payload, b'dirty')
        watcher.expect_nothing(0.3)

    def test_ping_flood_from_non_reader_is_bounded(self):
        """Pings from a client that reads nothing: their pongs fill its
        output (max_output_buffer), reading it stops, the broker stays
        small and serves others.  (The kernel's socket buffers take tens
        of megabytes first on loopback.)"""
        before = self.sys_value(self.broker, '$SYS/broker/limits/max_output_buffer')
        rss_before = rss_kib(self.broker.proc.pid)
        c = WsRawClient(self.ws)
        self._clients.append(c)
        c.connect('')
        c.sock.setblocking(False)
        ping = wsraw.frame(OP_PING, b'z' * 125) * 64
        sent, blocked_since, off = 0, None, 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sent < 400 * 1024 * 1024:
            try:
                n = c.sock.send(ping[off:])   # whole frames only, in order
                sent += n
                off = (off + n) % len(ping)
                blocked_since = None
            except BlockingIOError:
                blocked_since = blocked_since or time.monotonic()
                if time.monotonic() - blocked_since > 1.5:
                    break
                time.sleep(0.05)
        self.assertIsNotNone(blocked_since, 'the broker kept reading a non-reader (%d bytes)' % sent)
        self.assertGreater(self.sys_value(self.broker, '$SYS/broker/limits/max_output_buffer',
                                          at_least=before + 1), before)
        self.assertLess(rss_kib(self.broker.proc.pid) - rss_before, 64 * 1024)
        w = self.watcher()
        self.assert_broker_serves(w)

    # ---- the same connection code as TCP
    def test_listener_options_apply(self):
        """allow_anonymous=false on a ws listener refuses (CONNACK 5) and
        its max_connections holds."""
        b = self.start_broker({'listen': ['127.0.0.1:0', '127.0.0.1:0 ws allow_anonymous=false',
                                          '127.0.0.1:0 ws max_connections=2']})
        c = WsRawClient(ws_port(b, 1))
        self._clients.append(c)
        self.assertEqual(c.connect('anon', expect_rc=None).rc, 5)
        self.assertTrue(c.wait_eof())
        port = ws_port(b, 2)
        held = [WsRawClient(port), WsRawClient(port)]
        self._clients.extend(held)
        with self.assertRaises((mqttraw.Closed, ConnectionError)):
            WsRawClient(port, timeout=3)   # the third is closed at accept

    def test_keepalive_over_ws(self):
        """A silent client is cut after 1.5 x keep alive, with a close
        frame, and its will goes out."""
        watcher = self.watcher()
        c = self.wsc()
        c.connect('ws-silent', keepalive=1, will=(self.topic('will'), b'timed-out', 0, False))
        start = time.monotonic()
        self.assertEqual(c.wait_close(timeout=1.5 + harness.KEEPALIVE_SLACK + 2), 1000)
        self.assertGreaterEqual(time.monotonic() - start, 1.2)
        self.assertEqual(watcher.expect_publish().payload, b'timed-out')

    # ---- interop and TLS
    def _interop(self, client):
        topic = self.topic()
        client.connect('')
        client.subscribe([(topic + '/to-ws', 2)], expect_granted=[2])
        sub = self.mosquitto_sub(topic + '/from-ws', qos=2).wait_subscribed()
        for qos in (0, 1, 2):
            self.mosquitto_pub(topic + '/to-ws', 'tcp-to-ws-%d' % qos, qos=qos)
            p = client.expect_publish()
            self.assertEqual((p.payload, p.qos), (b'tcp-to-ws-%d' % qos, qos))
            client.publish(topic + '/from-ws', b'ws-to-tcp-%d' % qos, qos=qos)
            got = sub.get()
            self.assertEqual((got[0], got[2], got[3]), (qos, topic + '/from-ws', 'ws-to-tcp-%d' % qos))

    def test_interop_with_mosquitto_clients_ws(self):
        self._interop(self.wsc())

    def test_interop_with_mosquitto_clients_wss(self):
        self._interop(self.wss_client())

    def test_wss_plain_http_refused(self):
        """The wss port speaks TLS first: a plain upgrade request fails."""
        text, _ = wsraw.request(self.wss)
        s = socket.create_connection(('127.0.0.1', self.wss), timeout=5)
        self._clients.append(s)
        s.sendall(text)
        self.assert_closed_by_server(s, timeout=CONNECT_TIMEOUT + 4)


if __name__ == '__main__':
    unittest.main()
