"""test_notify.py - petreld speaks sd_notify to a service manager: READY=1
once it listens, STATUS= with its figures, WATCHDOG=1 within the watchdog
period when WATCHDOG_USEC is set (and only for the process WATCHDOG_PID
names), and STOPPING=1 on SIGTERM.  The test plays the manager: it owns the
datagram socket that NOTIFY_SOCKET names."""

import os
import shutil
import signal
import socket
import tempfile
import time
import unittest

from deploytest import SYSTEMD_NOTIFY, harness, main, mqttraw

WATCHDOG_USEC = 2000000


class Manager:
    """A notification socket, and the messages sent to it with the time
    each arrived."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='petrel-notify-')
        self.path = os.path.join(self.dir, 'notify')
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []   # (monotonic time, {key: value})

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def wait_for(self, key, timeout, value=None, since=0):
        """The first message at index >= since with key (= value); returns
        (index, time, fields) or fails after timeout seconds."""
        deadline = time.monotonic() + timeout
        i = since
        while True:
            while i < len(self.messages):
                t, fields = self.messages[i]
                if key in fields and (value is None or fields[key] == value):
                    return i, t, fields
                i += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError('no %s%s within %.1fs; got %r' % (
                    key, '=' + value if value else '', timeout,
                    [m[1] for m in self.messages]))
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            fields = dict(l.split('=', 1) for l in data.decode().split('\n') if '=' in l)
            self.messages.append((time.monotonic(), fields))


@unittest.skipIf(harness.IS_MOSQUITTO, 'petreld only')
@unittest.skipUnless(SYSTEMD_NOTIFY, 'petreld built without libsystemd (-Dsystemd)')
class Notify(unittest.TestCase):

    def start(self, env):
        self.mgr = Manager()
        self.addCleanup(self.mgr.close)
        saved = {k: os.environ.get(k) for k in ('NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID')}
        os.environ['NOTIFY_SOCKET'] = self.mgr.path
        os.environ.pop('WATCHDOG_PID', None)
        os.environ.update(env)
        try:
            # harness.Broker starts petreld with this process' environment
            self.broker = harness.Broker({'log_level': 'info'})
            self.broker._launch()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.addCleanup(self.broker.kill)
        self.started = time.monotonic()

    def test_ready_watchdog_stopping(self):
        self.start({'WATCHDOG_USEC': str(WATCHDOG_USEC)})
        i, t_ready, fields = self.mgr.wait_for('READY', harness.START_TIMEOUT, '1')
        # READY=1 comes after the store is loaded and the listeners are
        # open: the log says so already, and the port takes connections.
        log = self.broker.run_log_text()
        self.assertRegex(log, r'\bloaded\b')
        self.assertRegex(log, r'listening on 127\.0\.0\.1:\d+')
        self.broker._wait_ready()
        self.assertRegex(fields.get('STATUS', ''),
                         r'^0 clients, 0 sessions, 0 queued messages \(0 bytes\), 0 in flight$')
        c = mqttraw.RawClient(self.broker.port)
        c.connect('notify-client', clean=True)
        c.ping()

        # Pings come from the loop every half period; two in a row must
        # each arrive within one period of the one before.
        period = WATCHDOG_USEC / 1e6
        last = t_ready
        for _ in range(2):
            i, t, _ = self.mgr.wait_for('WATCHDOG', period + 0.5, '1', since=i + 1)
            self.assertLess(t - last, period, 'watchdog ping later than the period')
            last = t
        # the status follows the broker: one client connected now
        j, _, f = self.mgr.wait_for('STATUS', 3 * period, since=1)
        while not f['STATUS'].startswith('1 clients'):
            j, _, f = self.mgr.wait_for('STATUS', 3 * period, since=j + 1)
        self.assertRegex(f['STATUS'], r'^1 clients, 1 sessions, 0 queued messages')
        c.disconnect()

        self.broker.signal(signal.SIGTERM)
        _, _, fields = self.mgr.wait_for('STOPPING', harness.STOP_TIMEOUT, '1', since=i + 1)
        self.assertEqual(self.broker.proc.wait(harness.STOP_TIMEOUT), 0)
        self.assertIsNone(self.broker.sanitizer_report(), self.broker.tail())

    def term_and_expect_stopping(self):
        """SIGTERM: STOPPING=1 is sent and the broker exits with 0."""
        self.broker.signal(signal.SIGTERM)
        self.mgr.wait_for('STOPPING', harness.STOP_TIMEOUT, '1')
        self.assertEqual(self.broker.proc.wait(harness.STOP_TIMEOUT), 0)

    def test_no_watchdog_pings_for_another_pid(self):
        # WATCHDOG_PID names the process the watchdog is for: a child
        # that inherited the variables must not ping (sd_watchdog_enabled).
        self.start({'WATCHDOG_USEC': '400000', 'WATCHDOG_PID': str(os.getpid())})
        self.mgr.wait_for('READY', harness.START_TIMEOUT, '1')
        with self.assertRaises(AssertionError):
            self.mgr.wait_for('WATCHDOG', 1.5)
        self.term_and_expect_stopping()

    def test_ready_without_watchdog(self):
        self.start({})
        self.mgr.wait_for('READY', harness.START_TIMEOUT, '1')
        with self.assertRaises(AssertionError):
            self.mgr.wait_for('WATCHDOG', 1.0)
        self.term_and_expect_stopping()


if __name__ == '__main__':
    main()
