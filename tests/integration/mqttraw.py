"""mqttraw.py - a raw MQTT 3.1.1 client over plain sockets for the tests.

It shares no code with Petrel's C codec on purpose: packets are built byte by
byte here so that tests can send exactly what they mean, broken packets
included, and check exactly what comes back.  Every read has a timeout.
"""

import select
import socket
import struct
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14

TYPE_NAMES = {
    1: 'CONNECT', 2: 'CONNACK', 3: 'PUBLISH', 4: 'PUBACK', 5: 'PUBREC',
    6: 'PUBREL', 7: 'PUBCOMP', 8: 'SUBSCRIBE', 9: 'SUBACK', 10: 'UNSUBSCRIBE',
    11: 'UNSUBACK', 12: 'PINGREQ', 13: 'PINGRESP', 14: 'DISCONNECT', 15: 'AUTH',
}

DEFAULT_TIMEOUT = 5.0


class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


class Timeout(Exception):
    """Nothing (complete) arrived in time."""


# ---------------------------------------------------------------- encoding

def varint(n):
    """Remaining Length encoding (1 to 4 bytes)."""
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def mqtt_str(s):
    """A length-prefixed UTF-8 string; bytes are sent unchanged."""
    b = s.encode('utf-8') if isinstance(s, str) else bytes(s)
    return struct.pack('!H', len(b)) + b


def packet(ptype, flags, body=b''):
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def connect_flags(clean, will, username, password):
    """The Connect Flags byte (3.1.1 and 5.0): clean session/start, will
    (topic, payload, qos, retain), username and password present."""
    f = 0x02 if clean else 0
    if will is not None:
        f |= 0x04 | ((will[2] & 3) << 3) | (0x20 if will[3] else 0)
    if password is not None:
        f |= 0x40
    if username is not None:
        f |= 0x80
    return f


def connect_packet(client_id='', clean=True, keepalive=60, will=None,
                   username=None, password=None, proto_name='MQTT', level=4,
                   reserved_flag=False, flags=None):
    """CONNECT.  will = (topic, payload, qos, retain).  flags overrides the
    computed connect flags byte (for broken packets)."""
    f = connect_flags(clean, will, username, password)
    if reserved_flag:
        f |= 0x01
    if flags is not None:
        f = flags
    body = mqtt_str(proto_name) + bytes([level, f]) + struct.pack('!H', keepalive)
    body += mqtt_str(client_id)
    if will is not None:
        payload = will[1].encode() if isinstance(will[1], str) else will[1]
        body += mqtt_str(will[0]) + struct.pack('!H', len(payload)) + payload
    if username is not None:
        body += mqtt_str(username)
    if password is not None:
        pw = password.encode() if isinstance(password, str) else password
        body += struct.pack('!H', len(pw)) + pw
    return packet(CONNECT, 0, body)


def publish_packet(topic, payload=b'', qos=0, retain=False, pid=None, dup=False, props=None):
    """PUBLISH; props: a 5.0 property list (None: a 3.1.1 packet)."""
    if isinstance(payload, str):
        payload = payload.encode()
    flags = (0x08 if dup else 0) | ((qos & 3) << 1) | (1 if retain else 0)
    body = mqtt_str(topic)
    if qos > 0:
        body += struct.pack('!H', pid if pid is not None else 1)
    if props is not None:
        body += props_bytes(props)
    return packet(PUBLISH, flags, body + payload)


def subscribe_packet(pid, topics):
    """topics: list of (filter, qos)."""
    body = struct.pack('!H', pid)
    for t, q in topics:
        body += mqtt_str(t) + bytes([q])
    return packet(SUBSCRIBE, 0x02, body)


def unsubscribe_packet(pid, filters):
    body = struct.pack('!H', pid)
    for t in filters:
        body += mqtt_str(t)
    return packet(UNSUBSCRIBE, 0x02, body)


def ack_packet(ptype, pid):
    flags = 0x02 if ptype == PUBREL else 0
    return packet(ptype, flags, struct.pack('!H', pid))


PINGREQ_BYTES = packet(PINGREQ, 0)
DISCONNECT_BYTES = packet(DISCONNECT, 0)


# ---------------------------------------------------------------- decoding

class Packet:
    def __init__(self, first, body):
        self.type = first >> 4
        self.flags = first & 0x0F
        self.body = body
        self.raw_first = first
        if self.type == PUBLISH:
            self.dup = bool(self.flags & 0x08)
            self.qos = (self.flags >> 1) & 3
            self.retain = bool(self.flags & 1)
            tlen = struct.unpack('!H', body[:2])[0]
            self.topic = body[2:2 + tlen].decode('utf-8')
            pos = 2 + tlen
            if self.qos:
                self.pid = struct.unpack('!H', body[pos:pos + 2])[0]
                pos += 2
            else:
                self.pid = None
            self.payload = body[pos:]
        elif self.type in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK):
            self.pid = struct.unpack('!H', body[:2])[0] if len(body) >= 2 else None
        elif self.type == SUBACK:
            self.pid = struct.unpack('!H', body[:2])[0]
            self.granted = list(body[2:])
        elif self.type == CONNACK:
            self.session_present = bool(body[0] & 1) if body else None
            self.rc = body[1] if len(body) > 1 else None

    @property
    def name(self):
        return TYPE_NAMES.get(self.type, str(self.type))

    def __repr__(self):
        if self.type == PUBLISH:
            return ('<PUBLISH %r q%d%s%s pid=%r %r>' %
                    (self.topic, self.qos, ' dup' if self.dup else '',
                     ' retain' if self.retain else '', self.pid, self.payload[:40]))
        return '<%s flags=%x %r>' % (self.name, self.flags, self.body[:16])


class RawClient:
    """One TCP connection to the broker."""

    def __init__(self, port, host='127.0.0.1', timeout=DEFAULT_TIMEOUT, rcvbuf=None):
        if rcvbuf is None:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        else:
            # a small receive window, set before connecting so it is honoured
            fam = socket.AF_INET6 if ':' in host else socket.AF_INET
            self.sock = socket.socket(fam, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.next_pid = 1

    # -- plumbing
    def send(self, data):
        self.sock.sendall(data)

    def try_send(self, data):
        """Send, ignoring a connection the broker has already closed."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline):
        """Read more bytes into buf; raise Closed on EOF, Timeout at deadline."""
        if self.eof:
            raise Closed()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout()
        r, _, _ = select.select([self.sock], [], [], remaining)
        if not r:
            raise Timeout()
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            data = b''
        if not data:
            self.eof = True
            raise Closed()
        self.buf += data

    def _try_parse(self):
        if len(self.buf) < 2:
            return None
        mult, length, i = 1, 0, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            length += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
            if i > 4:
                raise ValueError('server sent a malformed remaining length')
        if len(self.buf) < i + length:
            return None
        first = self.buf[0]
        body = bytes(self.buf[i:i + length])
        del self.buf[:i + length]
        return Packet(first, body)

    def read_packet(self, timeout=DEFAULT_TIMEOUT):
        """Next packet; Closed if the server closed first, Timeout otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            p = self._try_parse()
            if p is not None:
                return p
            self._fill(deadline)

    def expect(self, ptype, timeout=DEFAULT_TIMEOUT):
        """Next packet, which must be of type ptype (PINGRESPs are skipped
        unless asked for)."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.read_packet(max(0.01, deadline - time.monotonic()))
            if p.type == PINGRESP and ptype != PINGRESP:
                continue
            if p.type != ptype:
                raise AssertionError('expected %s, got %r' % (TYPE_NAMES[ptype], p))
            return p

    def wait_closed(self, timeout=DEFAULT_TIMEOUT):
        """True if the server closes the connection within timeout.  Packets
        that arrive before the close are returned in self.before_close."""
        self.before_close = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                p = self.read_packet(max(0.0, deadline - time.monotonic()))
                self.before_close.append(p)
            except Closed:
                return True
            except Timeout:
                return False

    def expect_nothing(self, timeout=0.5):
        """Asserts that no packet arrives (and the connection stays open)."""
        try:
            p = self.read_packet(timeout)
        except Timeout:
            return
        raise AssertionError('expected nothing, got %r' % p)

    def pid(self):
        p = self.next_pid
        self.next_pid = self.next_pid % 65535 + 1
        return p

    # -- MQTT operations
    def connect(self, client_id='', clean=True, keepalive=60, will=None,
                username=None, password=None, expect_rc=0, **kw):
        """Sends CONNECT and returns the CONNACK packet (asserting its rc)."""
        self.send(connect_packet(client_id, clean, keepalive, will, username, password, **kw))
        ack = self.expect(CONNACK)
        if expect_rc is not None and ack.rc != expect_rc:
            raise AssertionError('CONNACK rc %r, expected %r' % (ack.rc, expect_rc))
        return ack

    def subscribe(self, topics, expect_granted=None):
        """topics: list of (filter, qos) or a single filter string (qos 0).
        Returns the granted list."""
        if isinstance(topics, str):
            topics = [(topics, 0)]
        pid = self.pid()
        self.send(subscribe_packet(pid, topics))
        ack = self.expect(SUBACK)
        assert ack.pid == pid, 'SUBACK pid %r != %r' % (ack.pid, pid)
        if expect_granted is not None and ack.granted != expect_granted:
            raise AssertionError('granted %r, expected %r' % (ack.granted, expect_granted))
        return ack.granted

    def unsubscribe(self, filters):
        pid = self.pid()
        self.send(unsubscribe_packet(pid, filters))
        ack = self.expect(UNSUBACK)
        assert ack.pid == pid
        return ack

    def publish(self, topic, payload=b'', qos=0, retain=False, pid=None, dup=False,
                wait=True):
        """Publishes; for QoS 1/2 with wait=True completes the handshake."""
        if qos and pid is None:
            pid = self.pid()
        self.send(publish_packet(topic, payload, qos, retain, pid, dup))
        if wait and qos == 1:
            ack = self.expect(PUBACK)
            assert ack.pid == pid, 'PUBACK pid %r != %r' % (ack.pid, pid)
        elif wait and qos == 2:
            rec = self.expect(PUBREC)
            assert rec.pid == pid
            self.send(ack_packet(PUBREL, pid))
            comp = self.expect(PUBCOMP)
            assert comp.pid == pid
        return pid

    def expect_publish(self, timeout=DEFAULT_TIMEOUT, ack=True):
        """Next PUBLISH; with ack=True acknowledges QoS 1 (PUBACK) and QoS 2
        (PUBREC, waits PUBREL, PUBCOMP)."""
        p = self.expect(PUBLISH, timeout)
        if ack and p.qos == 1:
            self.send(ack_packet(PUBACK, p.pid))
        elif ack and p.qos == 2:
            self.send(ack_packet(PUBREC, p.pid))
            rel = self.expect(PUBREL, timeout)
            assert rel.pid == p.pid and rel.flags == 0x02, rel
            self.send(ack_packet(PUBCOMP, p.pid))
        return p

    def ping(self, timeout=DEFAULT_TIMEOUT):
        self.send(PINGREQ_BYTES)
        self.expect(PINGRESP, timeout)

    def disconnect(self):
        self.try_send(DISCONNECT_BYTES)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- MQTT 5.0
#
# A minimal 5.0 encoder/decoder: properties as a list of (id, value) pairs in
# wire order (value: int, str/bytes, or (key, value) for user properties).

AUTH = 15

P_PAYLOAD_FORMAT, P_MESSAGE_EXPIRY, P_CONTENT_TYPE = 0x01, 0x02, 0x03
P_RESPONSE_TOPIC, P_CORRELATION_DATA, P_SUBSCRIPTION_ID = 0x08, 0x09, 0x0B
P_SESSION_EXPIRY, P_ASSIGNED_CLIENT_ID, P_SERVER_KEEP_ALIVE = 0x11, 0x12, 0x13
P_AUTH_METHOD, P_AUTH_DATA, P_REQUEST_PROBLEM_INFO = 0x15, 0x16, 0x17
P_WILL_DELAY, P_REQUEST_RESPONSE_INFO, P_REASON_STRING = 0x18, 0x19, 0x1F
P_RECEIVE_MAXIMUM, P_TOPIC_ALIAS_MAXIMUM, P_TOPIC_ALIAS = 0x21, 0x22, 0x23
P_MAXIMUM_QOS, P_RETAIN_AVAILABLE, P_USER_PROPERTY = 0x24, 0x25, 0x26
P_MAXIMUM_PACKET_SIZE, P_WILDCARD_SUB, P_SUB_ID_AVAILABLE, P_SHARED_SUB = 0x27, 0x28, 0x29, 0x2A

_PTYPE = {}
for _i in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):
    _PTYPE[_i] = 'byte'
for _i in (0x13, 0x21, 0x22, 0x23):
    _PTYPE[_i] = 'u16'
for _i in (0x02, 0x11, 0x18, 0x27):
    _PTYPE[_i] = 'u32'
_PTYPE[0x0B] = 'varint'
for _i in (0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F):
    _PTYPE[_i] = 'utf8'
for _i in (0x09, 0x16):
    _PTYPE[_i] = 'binary'
_PTYPE[0x26] = 'pair'


def _bin(v):
    b = v.encode('utf-8') if isinstance(v, str) else bytes(v)
    return struct.pack('!H', len(b)) + b


def props_bytes(props):
    """The property block with its length prefix."""
    out = b''
    for pid, v in props or ():
        t = _PTYPE[pid]
        out += bytes([pid])
        if t == 'byte':
            out += bytes([v])
        elif t == 'u16':
            out += struct.pack('!H', v)
        elif t == 'u32':
            out += struct.pack('!I', v)
        elif t == 'varint':
            out += varint(v)
        elif t == 'pair':
            out += _bin(v[0]) + _bin(v[1])
        else:
            out += _bin(v)
    return varint(len(out)) + out


def read_varint(data, pos):
    """A Variable Byte Integer at data[pos]: (value, next position)."""
    mult, v = 1, 0
    while True:
        b = data[pos]
        pos += 1
        v += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            return v, pos


def parse_props(data, pos):
    """(list of (id, value), next position)."""
    length, pos = read_varint(data, pos)
    end = pos + length
    props = []
    while pos < end:
        pid = data[pos]
        pos += 1
        t = _PTYPE[pid]
        if t == 'byte':
            v = data[pos]
            pos += 1
        elif t == 'u16':
            v = struct.unpack('!H', data[pos:pos + 2])[0]
            pos += 2
        elif t == 'u32':
            v = struct.unpack('!I', data[pos:pos + 4])[0]
            pos += 4
        elif t == 'varint':
            v, pos = read_varint(data, pos)
        elif t == 'pair':
            kl = struct.unpack('!H', data[pos:pos + 2])[0]
            k = data[pos + 2:pos + 2 + kl].decode()
            pos += 2 + kl
            vl = struct.unpack('!H', data[pos:pos + 2])[0]
            v = (k, data[pos + 2:pos + 2 + vl].decode())
            pos += 2 + vl
        else:
            ln = struct.unpack('!H', data[pos:pos + 2])[0]
            v = bytes(data[pos + 2:pos + 2 + ln])
            if t == 'utf8':
                v = v.decode()
            pos += 2 + ln
        props.append((pid, v))
    return props, end


def connect5_packet(client_id='', clean=True, keepalive=60, props=(), will=None,
                    will_props=(), username=None, password=None):
    """5.0 CONNECT.  will = (topic, payload, qos, retain)."""
    f = connect_flags(clean, will, username, password)
    body = mqtt_str('MQTT') + bytes([5, f]) + struct.pack('!H', keepalive)
    body += props_bytes(props) + mqtt_str(client_id)
    if will is not None:
        payload = will[1].encode() if isinstance(will[1], str) else will[1]
        body += props_bytes(will_props) + mqtt_str(will[0]) + _bin(payload)
    if username is not None:
        body += mqtt_str(username)
    if password is not None:
        body += _bin(password)
    return packet(CONNECT, 0, body)


def publish5_packet(topic, payload=b'', qos=0, retain=False, pid=None, dup=False, props=()):
    return publish_packet(topic, payload, qos, retain, pid, dup, props=list(props))


def subscribe5_packet(pid, topics, props=()):
    """topics: list of (filter, options byte)."""
    body = struct.pack('!H', pid) + props_bytes(props)
    for t, o in topics:
        body += mqtt_str(t) + bytes([o])
    return packet(SUBSCRIBE, 0x02, body)


def ack5_packet(ptype, pid, reason=0, props=()):
    flags = 0x02 if ptype == PUBREL else 0
    return packet(ptype, flags, struct.pack('!H', pid) + bytes([reason]) + props_bytes(props))


def disconnect5_packet(reason=0, props=()):
    return packet(DISCONNECT, 0, bytes([reason]) + props_bytes(props))


class Packet5:
    """A packet from the broker on a 5.0 connection: .type, .rc (reason
    code), .props (list), .prop(id) (first value), and for PUBLISH .topic,
    .qos, .pid, .payload, .retain, .dup."""

    def __init__(self, p):
        self.type, self.flags, self.body = p.type, p.flags, p.body
        self.props = []
        self.rc = None
        b = p.body
        if p.type == CONNACK:
            self.session_present = bool(b[0] & 1)
            self.rc = b[1]
            self.props, _ = parse_props(b, 2)
        elif p.type == PUBLISH:
            self.dup, self.qos, self.retain = bool(p.flags & 8), (p.flags >> 1) & 3, bool(p.flags & 1)
            tlen = struct.unpack('!H', b[:2])[0]
            self.topic = b[2:2 + tlen].decode()
            pos = 2 + tlen
            self.pid = None
            if self.qos:
                self.pid = struct.unpack('!H', b[pos:pos + 2])[0]
                pos += 2
            self.props, pos = parse_props(b, pos)
            self.payload = b[pos:]
        elif p.type in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            self.pid = struct.unpack('!H', b[:2])[0]
            self.rc = b[2] if len(b) > 2 else 0
            if len(b) > 3:
                self.props, _ = parse_props(b, 3)
        elif p.type in (SUBACK, UNSUBACK):
            self.pid = struct.unpack('!H', b[:2])[0]
            self.props, pos = parse_props(b, 2)
            self.codes = list(b[pos:])
        elif p.type in (DISCONNECT, AUTH):
            self.rc = b[0] if b else 0
            if len(b) > 1:
                self.props, _ = parse_props(b, 1)

    def prop(self, pid, default=None):
        for k, v in self.props:
            if k == pid:
                return v
        return default

    def all(self, pid):
        return [v for k, v in self.props if k == pid]

    def __repr__(self):
        return '<%s rc=%r props=%r %r>' % (TYPE_NAMES.get(self.type), self.rc, self.props,
                                           self.body[:24])


class Raw5(RawClient):
    """RawClient speaking MQTT 5.0."""

    def read5(self, timeout=DEFAULT_TIMEOUT):
        return Packet5(self.read_packet(timeout))

    def expect5(self, ptype, timeout=DEFAULT_TIMEOUT):
        return Packet5(self.expect(ptype, timeout))

    def connect5(self, client_id='', clean=True, keepalive=60, props=(), expect_rc=0, **kw):
        self.send(connect5_packet(client_id, clean, keepalive, props, **kw))
        ack = self.expect5(CONNACK)
        if expect_rc is not None and ack.rc != expect_rc:
            raise AssertionError('CONNACK rc 0x%02x, expected 0x%02x: %r' % (ack.rc, expect_rc, ack))
        return ack

    def subscribe5(self, topics, props=()):
        if isinstance(topics, str):
            topics = [(topics, 0)]
        pid = self.pid()
        self.send(subscribe5_packet(pid, topics, props))
        ack = self.expect5(SUBACK)
        assert ack.pid == pid
        return ack

    def publish5(self, topic, payload=b'', qos=0, retain=False, props=(), pid=None):
        """Publishes; returns the PUBACK/PUBREC (completing QoS 2 when the
        PUBREC is a success) or None for QoS 0."""
        if qos and pid is None:
            pid = self.pid()
        self.send(publish5_packet(topic, payload, qos, retain, pid, props=props))
        if qos == 1:
            return self.expect5(PUBACK)
        if qos == 2:
            rec = self.expect5(PUBREC)
            if rec.rc < 0x80:
                self.send(ack5_packet(PUBREL, pid))
                self.expect5(PUBCOMP)
            return rec
        return None

    def expect_publish5(self, timeout=DEFAULT_TIMEOUT, ack=True):
        p = self.expect5(PUBLISH, timeout)
        if ack and p.qos == 1:
            self.send(ack5_packet(PUBACK, p.pid))
        elif ack and p.qos == 2:
            self.send(ack5_packet(PUBREC, p.pid))
            self.expect5(PUBREL, timeout)
            self.send(ack5_packet(PUBCOMP, p.pid))
        return p

    def expect_disconnect(self, timeout=DEFAULT_TIMEOUT):
        """The broker's DISCONNECT (Packet5), then the close."""
        p = self.expect5(DISCONNECT, timeout)
        assert self.wait_closed(timeout), 'connection left open after DISCONNECT'
        return p
