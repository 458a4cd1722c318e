"""http_helpers.py - the HTTP listener's tests: a broker with http_listen,
its URL from the log, a token file, and requests with bounded waits
(http.client, or a raw socket for what http.client will not send)."""

import http.client
import json
import os
import re
import socket
import ssl

from harness import Broker

READ_TOKEN = 'r' * 8 + '0123456789abcdef'
ADMIN_TOKEN = 'a' * 8 + 'fedcba9876543210'
TIMEOUT = 10.0


def write_tokens(directory, lines=None):
    path = os.path.join(directory, 'tokens')
    if lines is None:
        lines = ['# test tokens', '', 'reader read %s' % READ_TOKEN,
                 'boss admin %s' % ADMIN_TOKEN]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


class HttpBroker(Broker):
    """A petreld with an HTTP listener on a free loopback port.  http_extra:
    words after the address on the http_listen line; tokens: write a token
    file (the default one, or these lines)."""

    def __init__(self, settings=None, http_extra='', tokens=True, **kw):
        super().__init__(settings, **kw)
        if tokens:
            lines = None if tokens is True else tokens
            self.settings['http_token_file'] = write_tokens(self.tmp, lines)
        self.settings['http_listen'] = ('127.0.0.1:0 ' + http_extra).strip()
        self.http_port = None
        self.https = 'tls' in http_extra.split()

    def start(self):
        super().start()
        # the run's own line: after a restart the log holds the earlier ones too
        ports = re.findall(r'http listener on https?://127\.0\.0\.1:(\d+)/', self.run_log_text())
        assert ports, 'no http listener line\n' + self.tail()
        self.http_port = int(ports[-1])
        return self

    def request(self, method, path, token=None, body=None, headers=None, context=None):
        """(status, headers dict (lower-case names), body bytes)."""
        if self.https:
            conn = http.client.HTTPSConnection('127.0.0.1', self.http_port, timeout=TIMEOUT,
                                               context=context)
        else:
            conn = http.client.HTTPConnection('127.0.0.1', self.http_port, timeout=TIMEOUT)
        try:
            h = dict(headers or {})
            if token:
                h['Authorization'] = 'Bearer ' + token
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def get_json(self, path, token=None, method='GET', expect=200, body=None):
        status, headers, data = self.request(method, path, token=token, body=body)
        assert status == expect, '%s %s: %d, wanted %d: %r' % (method, path, status, expect,
                                                               data[:300])
        assert headers.get('content-type', '').startswith('application/json'), headers
        return json.loads(data.decode('utf-8'))

    def raw(self, data, read_until_close=True, timeout=TIMEOUT):
        """Sends bytes as they are; returns what comes back until the
        broker closes (or the end of the reply's headers, without
        read_until_close), or `timeout`."""
        s = socket.create_connection(('127.0.0.1', self.http_port), timeout=timeout)
        try:
            s.sendall(data)
            out = b''
            while True:
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, socket.timeout):
                    break
                if not chunk:
                    break
                out += chunk
                if not read_until_close and b'\r\n\r\n' in out:
                    break
            return out
        finally:
            s.close()


def tls_client_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx
