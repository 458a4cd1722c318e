#!/usr/bin/python3
"""ws_idle.py - bytes of broker memory per idle connection, plain MQTT
against MQTT over WebSocket (and TLS against wss), on one petreld: N clients connect
(CONNECT accepted, keep alive 600 s, clean session) on one transport, the
broker's RSS is read once it has settled, they disconnect, and the next
transport is measured the same way on a fresh broker.  The figure is the
RSS growth over the idle broker divided by N (the kernel's socket buffers
are not in it, for any transport).

    tests/bench/ws_idle.py [--petreld build/broker/petreld] [--clients 2000]

The clients are Python sockets in this process (the WebSocket handshake and
frames written by tests/integration/wsraw.py), all on 127.0.0.1.
"""

import argparse
import json
import os
import socket
import ssl
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))
import petreltest  # noqa: E402
from petreltest import rss_kib  # noqa: E402
import mqttraw  # noqa: E402
import tls_helpers  # noqa: E402
import wsraw  # noqa: E402


class Petreld(petreltest.BrokerProcess):
    error = RuntimeError

    def __init__(self, exe, tmp, listen):
        super().__init__(tmp=tmp)
        self.exe = exe
        data = os.path.join(tmp, 'data')
        os.makedirs(data, exist_ok=True)
        self.conf = os.path.join(tmp, 'petreld.conf')
        with open(self.conf, 'w') as f:
            for line in listen:
                f.write('listen = %s\n' % line)
            f.write('data_dir = %s\nlog_level = notice\nmax_connections = 0\n'
                    'sys_interval = 0\n' % data)

    def start(self):
        self.spawn([self.exe, '-c', self.conf])
        self.wait_ready(self.petreld_ready, 30)
        self.ports = [p for _, p in petreltest.petreld_listeners(self.log_text())]
        return self


def settle(pid, seconds=1.5):
    """RSS once it stopped moving for a while (the broker frees lazily)."""
    last, stable_since = rss_kib(pid), time.monotonic()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = rss_kib(pid)
        if abs(now - last) > 16:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= seconds:
            break
    return last


def connect_all(kind, port, n, certs):
    conns = []
    connect = mqttraw.connect_packet('', keepalive=600)
    ctx = tls_helpers.client_context(certs.ca) if kind in ('wss', 'tls') else None
    for _ in range(n):
        if kind == 'tcp':
            c = mqttraw.RawClient(port)
            c.send(connect)
        elif kind == 'tls':
            c = tls_helpers.TlsRawClient(port, ctx)
            c.send(connect)
        else:
            sock = socket.create_connection(('127.0.0.1', port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ctx:
                sock = ctx.wrap_socket(sock, server_hostname='localhost')
            c = wsraw.WsRawClient(port, sock=sock)
            c.send(connect)
        conns.append(c)
    for c in conns:
        if kind in ('tcp', 'tls'):
            # mqttraw reads with select(), which stops at descriptor 1024
            c.sock.settimeout(20)
            ack = b''
            while len(ack) < 4:
                ack += c.sock.recv(4 - len(ack))
            assert ack == b'\x20\x02\x00\x00', ack
        else:
            assert c.expect(mqttraw.CONNACK, timeout=20).rc == 0
    return conns


def measure(exe, kind, n, certs):
    with tempfile.TemporaryDirectory(prefix='petrel-wsidle-') as tmp:
        listen = ['127.0.0.1:0']
        if kind == 'ws':
            listen.append('127.0.0.1:0 ws')
        elif kind == 'tls':
            listen.append('127.0.0.1:0 tls certfile=%s keyfile=%s' % (certs.server, certs.server_key))
        elif kind == 'wss':
            listen.append('127.0.0.1:0 wss certfile=%s keyfile=%s' % (certs.server, certs.server_key))
        b = Petreld(exe, tmp, listen).start()
        try:
            port = b.ports[-1]
            # warm up: the first connections size the broker's own tables
            for c in connect_all(kind, port, 50, certs):
                c.close()
            base = settle(b.pid)
            conns = connect_all(kind, port, n, certs)
            loaded = settle(b.pid)
            for c in conns:
                c.close()
            return {'transport': kind, 'clients': n, 'rss_idle_kib': base,
                    'rss_loaded_kib': loaded,
                    'bytes_per_connection': round((loaded - base) * 1024 / n)}
        finally:
            b.terminate()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--petreld', default=os.path.join(REPO, 'build', 'broker', 'petreld'))
    ap.add_argument('--clients', type=int, default=2000)
    ap.add_argument('--transports', default='tcp,ws,tls,wss')
    ap.add_argument('--json', action='store_true')
    a = ap.parse_args()
    certs = tls_helpers.Certs()
    try:
        rows = [measure(a.petreld, k, a.clients, certs) for k in a.transports.split(',')]
    finally:
        certs.close()
    per = {r['transport']: r['bytes_per_connection'] for r in rows}
    for r in rows:
        # ws against tcp, wss against tls
        ref = {'ws': 'tcp', 'wss': 'tls'}.get(r['transport'])
        if ref in per:
            r['ratio_to_' + ref] = round(r['bytes_per_connection'] / max(1, per[ref]), 2)
        if not a.json:
            print('%-4s %6d idle clients: %6d bytes each (RSS %d -> %d KiB)%s'
                  % (r['transport'], r['clients'], r['bytes_per_connection'], r['rss_idle_kib'],
                     r['rss_loaded_kib'],
                     ', %.2fx %s' % (r['ratio_to_' + ref], ref) if ref in per else ''))
    if a.json:
        print(json.dumps(rows))


if __name__ == '__main__':
    main()
