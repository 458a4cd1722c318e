"""The WAL on a full disk (issue #14 item 8): petreld's data directory on a
small filesystem (a 24 MiB tmpfs, mounted in a mount namespace of the
broker's own with unshare) is filled by a fast publisher.  The WAL must
stay within what the database can still take (half the room), so that
once messages are consumed and space is freed the store recovers, and the
WAL gives its space back.  Before, the WAL took 17 of the 24 MB beside a
1 MB database, the checkpoint could never copy it, and every write failed
for good.  Needs root (or user namespaces) for the mount; skipped
otherwise.  petreld only."""

import os
import shutil
import subprocess
import time

import harness
from harness import BrokerTestCase, Collector, numbered
import mqttraw
from mqttraw import PUBACK

UNSHARE = shutil.which('unshare')
FS_SIZE = 24 * 2 ** 20
FILLER = 6 * 2 ** 20
PAYLOAD = 50000


def can_mount_tmpfs():
    if not UNSHARE:
        return False
    r = subprocess.run([UNSHARE, '-m', '--propagation', 'private', 'sh', '-c',
                        'mount -t tmpfs -o size=1m petrel-probe /mnt 2>/dev/null || '
                        'mount -t tmpfs -o size=1m petrel-probe /tmp'],
                       capture_output=True, timeout=10)
    return r.returncode == 0


@harness.skip_on_mosquitto('petreld store on a full disk')
class DiskFullTest(BrokerTestCase):

    def setUp(self):
        super().setUp()
        if not can_mount_tmpfs():
            self.skipTest('cannot mount a tmpfs in a mount namespace (needs root or userns)')

    def start_on_tmpfs(self):
        b = harness.Broker({'log_level': 'notice'}, log_pipe=True)
        b.wrapper = [UNSHARE, '-m', '--propagation', 'private', 'sh', '-c',
                     'mount -t tmpfs -o size=%d petrel-disk-full "$1" && shift && exec "$@"'
                     % FS_SIZE, 'sh', b.data_dir]
        b.start()
        self.addCleanup(b.stop, check=False)
        # the broker's view of its data directory, from outside its namespace
        self.root = '/proc/%d/root%s' % (b.pid, b.data_dir)
        return b

    def wal_size(self):
        try:
            return os.path.getsize(os.path.join(self.root, 'petrel.db-wal'))
        except OSError:
            return 0

    def burst(self, b, first, count):
        """Pipelines `count` QoS 1 publishes; returns how many were
        acknowledged before the broker closed the connection."""
        c = mqttraw.RawClient(b.port)
        c.connect('')
        try:
            c.send(b''.join(mqttraw.publish_packet('disk/t', numbered(first + i, PAYLOAD), qos=1,
                                                   pid=i + 1) for i in range(count)))
        except OSError:
            # The broker closed the connection (the disk is full) while the
            # burst was still going out: a reset drops what it had sent back,
            # so none of this burst counts as acknowledged (an undercount
            # keeps the later check of every acknowledged message honest).
            c.close()
            return 0
        acked = 0
        deadline = time.monotonic() + 10
        while acked < count and time.monotonic() < deadline:
            try:
                p = c.read_packet(5)
            except (mqttraw.Closed, mqttraw.Timeout):
                break
            if p.type == PUBACK:
                acked += 1
        c.close()
        return acked

    def test_wal_bounded_and_store_recovers(self):
        b = self.start_on_tmpfs()
        with open(os.path.join(self.root, 'filler'), 'wb') as f:
            f.write(b'\0' * FILLER)
        sub = Collector(b.port, 'disk-sub')
        sub.subscribe([('disk/t', 1)])
        sub.disconnect()

        # Fill the disk: until three bursts in a row get nothing acknowledged.
        n = acked = failed_in_a_row = 0
        worst_wal = 0
        deadline = time.monotonic() + 60
        while failed_in_a_row < 3 and time.monotonic() < deadline:
            got = self.burst(b, n, 20)
            n += 20
            acked += got
            failed_in_a_row = failed_in_a_row + 1 if got == 0 else 0
            worst_wal = max(worst_wal, self.wal_size())
            if got < 20:
                time.sleep(0.3)
        self.assertEqual(failed_in_a_row, 3, 'the disk never filled (%d acknowledged)' % acked)
        self.assertGreater(acked, 40)
        room = FS_SIZE - FILLER
        print('\n%d of %d publishes of %d bytes acknowledged, largest WAL %.1f MB of %.1f MB room'
              % (acked, n, PAYLOAD, worst_wal / 2 ** 20, room / 2 ** 20))
        self.assertLessEqual(worst_wal, room * 0.6,
                             'the WAL took %d of the %d bytes of room' % (worst_wal, room))

        # Consume everything, free the filler: the store must recover.
        sub = Collector(b.port, 'disk-sub')
        sub.collect(done=lambda s: len(s.messages) >= acked, idle=0.5, timeout=10)
        got = set(sub.numbers())
        sub.disconnect()
        os.unlink(os.path.join(self.root, 'filler'))
        recovered = False
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.burst(b, n, 1) == 1:
                recovered = True
                break
            n += 1
            time.sleep(0.5)
        self.assertTrue(recovered, 'no publish acknowledged within 15 s of the disk having '
                        'room again\n' + b.tail())
        self.assertGreaterEqual(len(got), acked, 'acknowledged messages lost')
        time.sleep(2.5)   # a checkpoint or two
        self.assertLess(self.wal_size(), 4 * 2 ** 20,
                        'the WAL still takes %d bytes' % self.wal_size())


if __name__ == '__main__':
    harness.main()
