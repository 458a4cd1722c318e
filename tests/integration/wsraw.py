"""wsraw.py - a WebSocket client written for the tests (RFC 6455 by hand,
with hashlib/base64/struct only), so that every frame the broker gets can
be chosen: split anywhere, packed, unmasked, text, fragmented control.
WsRawClient is mqttraw's RawClient over it: send() wraps MQTT bytes in
masked binary frames, and reading unwraps the server's frames (pings are
answered, pongs and close frames recorded).
"""

import base64
import hashlib
import os
import socket
import struct
import time

import mqttraw

GUID = b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame(opcode, payload=b'', fin=True, mask=True, rsv=0):
    """One client frame (masked unless told not to)."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = struct.pack('!BB', b0, m | n)
    elif n < 65536:
        head = struct.pack('!BBH', b0, m | 126, n)
    else:
        head = struct.pack('!BBQ', b0, m | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    body = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return head + key + body


def request(port, path='/mqtt', protocols='mqtt', origin=None, key=None, version='13',
            extra=(), host=None):
    """The text of an upgrade request; None for a header leaves it out."""
    if key is None:
        key = base64.b64encode(os.urandom(16)).decode()
    lines = ['GET %s HTTP/1.1' % path, 'Host: %s' % (host or '127.0.0.1:%d' % port),
             'Upgrade: websocket', 'Connection: Upgrade']
    if key is not False:
        lines.append('Sec-WebSocket-Key: %s' % key)
    if version is not None:
        lines.append('Sec-WebSocket-Version: %s' % version)
    if protocols is not None:
        lines.append('Sec-WebSocket-Protocol: %s' % protocols)
    if origin is not None:
        lines.append('Origin: %s' % origin)
    lines += list(extra)
    return ('\r\n'.join(lines) + '\r\n\r\n').encode(), key


def recv_until(sock, deadline):
    """One recv within the deadline (no select: any descriptor number)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise mqttraw.Timeout()
    old = sock.gettimeout()
    sock.settimeout(left)
    try:
        return sock.recv(65536)
    except socket.timeout:
        raise mqttraw.Timeout()
    finally:
        sock.settimeout(old)


def read_http_head(sock, timeout=5.0):
    """(status, headers dict lower-case, bytes after the head)."""
    deadline = time.monotonic() + timeout
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = recv_until(sock, deadline)
        if not chunk:
            raise mqttraw.Closed()
        data += chunk
    head, rest = data.split(b'\r\n\r\n', 1)
    lines = head.decode('latin-1').split('\r\n')
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(':', 1)
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


class WsRawClient(mqttraw.RawClient):
    """An MQTT connection over WebSocket.  The handshake is made in the
    constructor (AssertionError unless the server answers 101 with the
    right accept value and `mqtt`); `sock` may be given (e.g. TLS)."""

    def __init__(self, port, host='127.0.0.1', path='/mqtt', timeout=mqttraw.DEFAULT_TIMEOUT,
                 sock=None, split=None, **req):
        if sock is None:
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.next_pid = 1
        self.wsbuf = bytearray()   # raw bytes from the server, not yet a frame
        self.pongs = []
        self.close_code = None     # from the server's close frame
        self.frames = []           # (opcode, payload) of every frame read
        self.split = split         # send(): frame payload sizes, None = one frame
        text, key = request(port, path=path, **req)
        self.sock.sendall(text)
        status, headers, rest = read_http_head(self.sock, timeout)
        assert status == 101, 'handshake answered %d' % status
        assert headers.get('sec-websocket-accept') == accept_for(key), headers
        assert headers.get('sec-websocket-protocol') == 'mqtt', headers
        self.wsbuf += rest

    # -- frames
    def send_frame(self, opcode, payload=b'', **kw):
        self.sock.sendall(frame(opcode, payload, **kw))

    def send(self, data):
        """MQTT bytes as binary frames: one, or sized as self.split says."""
        if not self.split:
            self.sock.sendall(frame(OP_BINARY, bytes(data)))
            return
        pos = 0
        for n in self.split:
            if pos >= len(data):
                break
            self.sock.sendall(frame(OP_BINARY, bytes(data[pos:pos + n])))
            pos += n
        if pos < len(data):
            self.sock.sendall(frame(OP_BINARY, bytes(data[pos:])))

    def _parse_frame(self):
        b = self.wsbuf
        if len(b) < 2:
            return None
        opcode = b[0] & 0x0F
        masked = b[1] & 0x80
        n = b[1] & 0x7F
        pos = 2
        if n == 126:
            if len(b) < 4:
                return None
            n = struct.unpack('!H', b[2:4])[0]
            pos = 4
        elif n == 127:
            if len(b) < 10:
                return None
            n = struct.unpack('!Q', b[2:10])[0]
            pos = 10
        assert not masked, 'server frames must not be masked'
        if len(b) < pos + n:
            return None
        payload = bytes(b[pos:pos + n])
        del b[:pos + n]
        return opcode, payload

    def read_frame(self, timeout=mqttraw.DEFAULT_TIMEOUT):
        """The next frame from the server, whatever it is."""
        deadline = time.monotonic() + timeout
        while True:
            f = self._parse_frame()
            if f is not None:
                self.frames.append(f)
                if f[0] == OP_CLOSE:
                    self.close_code = struct.unpack('!H', f[1][:2])[0] if len(f[1]) >= 2 else 1005
                return f
            self._fill_raw(deadline)

    def _fill_raw(self, deadline):
        if self.eof:
            raise mqttraw.Closed()
        try:
            data = recv_until(self.sock, deadline)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            data = b''
        if not data:
            self.eof = True
            raise mqttraw.Closed()
        self.wsbuf += data

    def _fill(self, deadline):
        """mqttraw's read: MQTT bytes out of binary frames."""
        while True:
            f = self._parse_frame()
            if f is None:
                self._fill_raw(deadline)
                continue
            self.frames.append(f)
            op, payload = f
            if op in (OP_BINARY, OP_CONT):
                self.buf += payload
                return
            if op == OP_PING:
                self.send_frame(OP_PONG, payload)
            elif op == OP_PONG:
                self.pongs.append(payload)
            elif op == OP_CLOSE:
                self.close_code = struct.unpack('!H', payload[:2])[0] if len(payload) >= 2 else 1005
                raise mqttraw.Closed()

    def wait_close(self, timeout=5.0):
        """Reads until the server's close frame; returns its code."""
        deadline = time.monotonic() + timeout
        while self.close_code is None:
            try:
                self.read_frame(timeout=max(0.01, deadline - time.monotonic()))
            except mqttraw.Closed:
                break
        return self.close_code

    def wait_eof(self, timeout=5.0):
        """True once the server closed the TCP connection."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._fill_raw(deadline)
            except mqttraw.Closed:
                return True
            except mqttraw.Timeout:
                return False
            self.wsbuf.clear()
        return True
