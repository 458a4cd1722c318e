"""The store file deleted or replaced while petreld runs (issue #14 item
16): petreld notices within about a second (it compares the path's device
and inode with the file it opened), stops acknowledging QoS 1 publishes
that would be written into a file no longer in the data directory (the
publisher's connection is closed, as after a failed commit), logs an
error, publishes $SYS/broker/store/status and tells the service manager
(STATUS=, here a NOTIFY_SOCKET of the test's own), and keeps serving QoS 0
traffic.  petreld only."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from harness import BrokerTestCase, Collector, skip_on_mosquitto
import mqttraw
from mqttraw import PUBACK


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='petrel-notify-')
        self.path = os.path.join(self.dir, 'notify')
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.seen = []

    def wait_status(self, words, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.seen.append(self.sock.recv(4096).decode('utf-8', 'replace'))
            except socket.timeout:
                continue
            if words in self.seen[-1]:
                return self.seen[-1]
        return None

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@skip_on_mosquitto('petreld store')
class StoreIdentityTest(BrokerTestCase):

    def start(self):
        self.notify = NotifySocket()
        self.addCleanup(self.notify.close)
        old = os.environ.get('NOTIFY_SOCKET')
        os.environ['NOTIFY_SOCKET'] = self.notify.path
        try:
            b = self.start_broker({'sys_interval': 1})
        finally:
            if old is None:
                del os.environ['NOTIFY_SOCKET']
            else:
                os.environ['NOTIFY_SOCKET'] = old
        self.assertIsNotNone(self.notify.wait_status('READY=1'))
        t = self.topic()
        sub = Collector(b.port, 'ident-sub')
        self._clients.append(sub)
        sub.client.subscribe([(t + '/q', 1)])
        sub.client.disconnect()   # offline: its messages go to the store
        pub = self.raw_connected(port=b.port)
        for n in range(3):
            pub.publish(t + '/q', b'before %d' % n, qos=1)   # acknowledged
        return b, t

    def expect_no_ack(self, b, t, what):
        """A QoS 1 publish for the persistent session is not acknowledged:
        the connection closes without a PUBACK."""
        for k in range(3):
            p = self.raw_connected(port=b.port)
            p.send(mqttraw.publish_packet(t + '/q', b'after %d' % k, qos=1, pid=1))
            closed = p.wait_closed(5)
            self.assertFalse(any(x.type == PUBACK for x in p.before_close),
                             'a QoS 1 publish was acknowledged after petrel.db was %s' % what)
            self.assertTrue(closed, 'neither PUBACK nor close (%s)' % what)

    def expect_reported(self, b, t, what):
        t0 = time.monotonic()
        self.assertIsNotNone(
            b.wait_log(r'error store: .*petrel\.db was %s since petreld opened it' % what, 5),
            'no error in the log about petrel.db %s' % what)
        took = time.monotonic() - t0
        self.expect_no_ack(b, t, what)
        # $SYS says so
        s = self.raw_connected(port=b.port)
        s.subscribe([('$SYS/broker/store/status', 0)])
        deadline = time.monotonic() + 5
        status = None
        while time.monotonic() < deadline:
            status = s.expect_publish(timeout=5).payload.decode()
            if what in status:
                break
        self.assertIn('was %s' % what, status)
        # and so does STATUS= to the service manager
        st = self.notify.wait_status('was %s' % what)
        self.assertIsNotNone(st, 'no STATUS= about it; seen %r' % self.notify.seen[-3:])
        self.assertIn('STATUS=', st)
        # QoS 0 traffic goes on, promptly
        w = self.raw_connected(port=b.port)
        w.subscribe([(t + '/live', 0)])
        o = self.raw_connected(port=b.port)
        t1 = time.monotonic()
        o.publish(t + '/live', b'still serving', qos=0)
        self.assertEqual(w.expect_publish(timeout=5).payload, b'still serving')
        self.assertLess(time.monotonic() - t1, 1.0)
        return took

    def test_deleted(self):
        b, t = self.start()
        os.unlink(b.db_path)
        took = self.expect_reported(b, t, 'deleted')
        self.assertLess(took, 3.0)

    def test_replaced(self):
        b, t = self.start()
        copy = b.db_path + '.copy'
        shutil.copyfile(b.db_path, copy)
        os.replace(copy, b.db_path)     # same name, another inode
        self.expect_reported(b, t, 'replaced by another file')

    @unittest.skipUnless(shutil.which('chattr'), 'no chattr')
    def test_made_unwritable_and_writable_again(self):
        # root may write any file: the immutable flag stops even root
        b, t = self.start()
        if subprocess.run(['chattr', '+i', b.db_path], capture_output=True).returncode != 0:
            self.skipTest('chattr +i not supported here')
        self.addCleanup(subprocess.run, ['chattr', '-i', b.db_path], capture_output=True)
        self.assertIsNotNone(b.wait_log(r'error store: .*petrel\.db is no longer writable', 5),
                             'no error in the log about an unwritable petrel.db')
        self.expect_no_ack(b, t, 'made unwritable')
        self.assertIsNotNone(self.notify.wait_status('petrel.db is not writable'))
        subprocess.run(['chattr', '-i', b.db_path], check=True, capture_output=True)
        self.assertIsNotNone(b.wait_log(r'notice store: .*petrel\.db is writable again', 5))
        # acknowledged again once a commit succeeds
        deadline = time.monotonic() + 10
        while True:
            p = self.raw_connected(port=b.port)
            p.send(mqttraw.publish_packet(t + '/q', b'again', qos=1, pid=3))
            try:
                if p.read_packet(3).type == PUBACK:
                    break
            except (mqttraw.Closed, mqttraw.Timeout):
                pass
            self.assertLess(time.monotonic(), deadline, 'never acknowledged again')


if __name__ == '__main__':
    harness.main()
