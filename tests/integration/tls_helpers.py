"""tls_helpers.py - throw-away certificates for the TLS tests (broker and
client side), made with the `openssl` command in a temporary directory, and
a raw MQTT client over Python's ssl module.

Keys are EC prime256v1, so that a whole set is made in well under a second.
"""

import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import mqttraw

OPENSSL = shutil.which('openssl')


class Certs:
    """A CA, a server certificate for localhost/127.0.0.1, client
    certificates, an expired server certificate, a server certificate for
    the wrong name, and a second, unrelated CA with a client of its own.
    Attributes are file paths."""

    def __init__(self):
        if not OPENSSL:
            raise unittest.SkipTest('the openssl command is not installed')
        self.dir = tempfile.mkdtemp(prefix='petrel-tls-')
        try:
            self._make()
        except BaseException:
            self.close()
            raise

    def path(self, name):
        return os.path.join(self.dir, name)

    def _run(self, *args):
        r = subprocess.run([OPENSSL] + list(args), cwd=self.dir, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError('openssl %s failed: %s' % (args[0], r.stderr.decode()))

    def _key(self, name):
        self._run('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                  '-out', name + '.key')
        return self.path(name + '.key')

    def _ca(self, name, cn):
        self._key(name)
        self._run('req', '-x509', '-new', '-key', name + '.key', '-out', name + '.crt',
                  '-days', '2', '-subj', '/CN=' + cn)
        return self.path(name + '.crt')

    def _cert(self, name, cn, ca, san=None, days='2', client=False):
        self._key(name)
        self._run('req', '-new', '-key', name + '.key', '-out', name + '.csr', '-subj',
                  '/CN=' + cn)
        ext = ['basicConstraints=CA:FALSE']
        if san:
            ext.append('subjectAltName=' + san)
        ext.append('extendedKeyUsage=' + ('clientAuth' if client else 'serverAuth'))
        with open(self.path(name + '.ext'), 'w') as f:
            f.write('\n'.join(ext) + '\n')
        self._run('x509', '-req', '-in', name + '.csr', '-CA', ca + '.crt', '-CAkey',
                  ca + '.key', '-CAcreateserial', '-out', name + '.crt', '-days', days,
                  '-extfile', name + '.ext')
        return self.path(name + '.crt'), self.path(name + '.key')

    def _make(self):
        self.ca = self._ca('ca', 'Petrel Test CA')
        self.ca2 = self._ca('ca2', 'Unrelated CA')
        self.server, self.server_key = self._cert('server', 'localhost', 'ca',
                                                  'DNS:localhost,IP:127.0.0.1')
        # -days -1: notAfter lies before notBefore, i.e. in the past
        self.expired, self.expired_key = self._cert('expired', 'localhost', 'ca',
                                                    'DNS:localhost,IP:127.0.0.1', days='-1')
        self.wrongname, self.wrongname_key = self._cert('wrongname', 'wrong.example', 'ca',
                                                        'DNS:wrong.example')
        self.server2, self.server2_key = self._cert('server2', 'localhost', 'ca2',
                                                    'DNS:localhost,IP:127.0.0.1')
        self.alice, self.alice_key = self._cert('alice', 'alice', 'ca', client=True)
        self.bob, self.bob_key = self._cert('bob', 'bob', 'ca', client=True)
        self.mallory, self.mallory_key = self._cert('mallory', 'alice', 'ca2', client=True)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def client_context(cafile=None, cert=None, key=None, check_hostname=True,
                   max_version=None, min_version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    ctx.check_hostname = check_hostname
    if not check_hostname:
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


class TlsRawClient(mqttraw.RawClient):
    """mqttraw's client over TLS.  The handshake happens in the constructor
    (ssl.SSLError if it fails); with TLS 1.3 a refused client certificate
    shows only on the first read, as a closed connection."""

    def __init__(self, port, ctx, host='127.0.0.1', server_hostname='localhost',
                 timeout=mqttraw.DEFAULT_TIMEOUT):
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=server_hostname)
        except BaseException:
            raw.close()
            raise
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.next_pid = 1

    def _fill(self, deadline):
        if self.eof:
            raise mqttraw.Closed()
        # Bytes OpenSSL already decrypted do not make the socket readable.
        if not self.sock.pending():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise mqttraw.Timeout()
            r, _, _ = select.select([self.sock], [], [], remaining)
            if not r:
                raise mqttraw.Timeout()
        try:
            data = self.sock.recv(65536)
        except ssl.SSLWantReadError:
            return
        except (ssl.SSLError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            data = b''
        if not data:
            self.eof = True
            raise mqttraw.Closed()
        self.buf += data


def tls_connect_outcome(port, ctx, **connect_kw):
    """'connected', or why not: 'handshake: <reason>', 'closed' (after the
    handshake, before a CONNACK) or 'connack <rc>'."""
    try:
        c = TlsRawClient(port, ctx)
    except (ssl.SSLError, OSError) as e:
        return 'handshake: %s' % (getattr(e, 'reason', None) or e)
    try:
        try:
            c.send(mqttraw.connect_packet(connect_kw.pop('client_id', ''), **connect_kw))
            ack = c.expect(mqttraw.CONNACK, timeout=5)
        except (mqttraw.Closed, OSError, ssl.SSLError):
            return 'closed'
        return 'connected' if ack.rc == 0 else 'connack %d' % ack.rc
    finally:
        c.close()
