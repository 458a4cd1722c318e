"""test_sandbox.py - the unit's sandbox fits what petreld really does.

systemd cannot start the unit in a build container, so this runs petreld
under strace through a realistic session (sd_notify with a watchdog,
persistent sessions, QoS 1 and 2, retained messages, a reload with
petreld --reload, a stop) and
checks what it did against deploy/petreld.service:
  - every system call is allowed by its SystemCallFilter= lines;
  - it creates only the socket families RestrictAddressFamilies= allows;
  - it writes only in its data directory (ProtectSystem=strict plus
    StateDirectory=), reads no /proc file outside its own process
    directory (ProcSubset=pid) and no devices beyond PrivateDevices='s;
  - no mapping is writable and executable (MemoryDenyWriteExecute=).
Skipped in sanitizer builds (the sanitizer runtime makes calls of its own)
and where strace cannot trace."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from deploytest import PETRELD, SANITIZED, UNIT_SOURCE, harness, main, mqttraw, run

STRACE = shutil.which('strace')
ANALYZE = shutil.which('systemd-analyze')
# What PrivateDevices= leaves in /dev.
PRIVATE_DEVICES = {'/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom',
                   '/dev/tty'}


def read(path):
    with open(path) as f:
        return f.read()


def unit_values(key):
    vals = []
    with open(UNIT_SOURCE) as f:
        for line in f:
            if line.startswith(key + '='):
                vals.append(line.split('=', 1)[1].strip())
    return vals


_groups = {}


def expand(name):
    """The system calls of a @group (recursively), or {name}."""
    if not name.startswith('@'):
        return {name}
    if name not in _groups:
        r = run([ANALYZE, 'syscall-filter', name])
        calls = set()
        for line in r.stdout.splitlines()[1:]:
            t = line.strip()
            if t and not t.startswith('#'):
                calls |= expand(t)
        _groups[name] = calls
    return _groups[name]


def allowed_syscalls():
    """SystemCallFilter= as systemd reads it: the first line is an allow
    list; later ~ lines take calls away, plain lines add them."""
    allowed = None
    for v in unit_values('SystemCallFilter'):
        deny = v.startswith('~')
        names = set()
        for item in v.lstrip('~').split():
            names |= expand(item)
        if allowed is None:
            assert not deny, 'the unit is expected to start with an allow list'
            allowed = names
        elif deny:
            allowed -= names
        else:
            allowed |= names
    return allowed


@unittest.skipIf(harness.IS_MOSQUITTO, 'petreld only')
@unittest.skipIf(SANITIZED, 'the sanitizer runtime makes system calls of its own')
@unittest.skipUnless(STRACE and ANALYZE, 'needs strace and systemd-analyze')
class Sandbox(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='petrel-sandbox-')
        cls.data = os.path.join(cls.tmp, 'data')
        cls.trace = os.path.join(cls.tmp, 'trace')
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(os.path.join(cls.tmp, 'notify'))
        conf = os.path.join(cls.tmp, 'petreld.conf')
        with open(conf, 'w') as f:
            f.write('listen = 127.0.0.1:0\nsys_interval = 1\nlog_level = info\n')
        env = dict(os.environ, NOTIFY_SOCKET=notify.getsockname(), WATCHDOG_USEC='1000000')
        env.pop('WATCHDOG_PID', None)
        log = open(os.path.join(cls.tmp, 'stderr'), 'w+')
        proc = harness.track(subprocess.Popen(
            [STRACE, '-f', '-qq', '-o', cls.trace, PETRELD, '-c', conf, '--data-dir', cls.data],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log))
        pid = None
        try:
            deadline = time.monotonic() + harness.START_TIMEOUT
            while True:
                log.seek(0)
                text = log.read()
                if re.search(r'\bready\b', text):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise unittest.SkipTest('petreld under strace did not start: ' + text[-400:])
                time.sleep(0.05)
            port = int(re.search(r'listening on 127\.0\.0\.1:(\d+)', text).group(1))
            pid = int(re.match(r'(\d+) ', read(cls.trace)).group(1))
            cls.maps = read('/proc/%d/maps' % pid)
            cls.exercise(port)
            cls.maps += read('/proc/%d/maps' % pid)
            time.sleep(1.2)   # a watchdog tick and a $SYS update
            # The unit's ExecReload= (petreld --reload signals petreld
            # itself: strace -o FILE blocks these signals), traced too.
            cls.reload = run([STRACE, '-f', '-qq', '-o', cls.trace + '.reload', PETRELD,
                              '--data-dir', cls.data, '--reload'], timeout=40)
            os.kill(pid, signal.SIGTERM)
            cls.rc = proc.wait(30)   # strace exits with petreld's status
        finally:
            if proc.poll() is None:
                # Killing strace would leave petreld running: kill it first.
                m = re.match(r'(\d+) ', read(cls.trace)) if os.path.exists(cls.trace) else None
                if pid or m:
                    os.kill(pid or int(m.group(1)), signal.SIGKILL)
                proc.kill()
                proc.wait(5)
            notify.close()
            log.close()
        cls.lines = read(cls.trace).splitlines()
        cls.lines += read(cls.trace + '.reload').splitlines()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @staticmethod
    def exercise(port):
        sub = mqttraw.RawClient(port)
        sub.connect('sandbox-sub', clean=False)
        sub.subscribe([('s/#', 2)])
        sub.disconnect()
        pub = mqttraw.RawClient(port)
        pub.connect('sandbox-pub')
        pub.publish('s/1', b'one', qos=1)
        pub.publish('s/2', b'two', qos=2)
        pub.publish('s/r', b'kept', qos=1, retain=True)
        pub.publish('s/0', b'zero', qos=0)
        sub = mqttraw.RawClient(port)
        sub.connect('sandbox-sub', clean=False)
        for p in [sub.expect_publish(ack=False) for _ in range(3)]:
            if p.qos == 1:
                sub.send(mqttraw.ack_packet(mqttraw.PUBACK, p.pid))
            else:
                sub.send(mqttraw.ack_packet(mqttraw.PUBREC, p.pid))
                sub.expect(mqttraw.PUBREL)
                sub.send(mqttraw.ack_packet(mqttraw.PUBCOMP, p.pid))
        sub.ping()
        sub.disconnect()
        pub.disconnect()

    def calls(self, name):
        return [l for l in self.lines if re.match(r'\d+\s+%s\(' % name, l)]

    def test_exit_status(self):
        self.assertEqual(self.rc, 0)

    def test_reload_command(self):
        r = self.reload
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r'^petreld \d+ reloaded \(reload 1, 0 errors\):\n'
                                   r'notice SIGHUP: configuration reloaded from ')

    def test_system_calls_within_filter(self):
        used = set()
        for l in self.lines:
            m = re.match(r'\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]', l)
            if m:
                used.add(m.group(1))
        self.assertIn('epoll_wait', used)
        outside = used - allowed_syscalls()
        if os.geteuid() == 0:
            # SQLite gives files it creates to the database's owner when it
            # runs as root; the service runs as its own user and does not.
            outside -= {'fchown'}
        self.assertEqual(sorted(outside), [], 'system calls the unit would refuse (EPERM)')

    def test_socket_families(self):
        allowed = set(unit_values('RestrictAddressFamilies')[-1].split())
        families = {re.search(r'socket\((\w+)', l).group(1) for l in self.calls('socket')}
        self.assertTrue(families)
        self.assertLessEqual(families, allowed)

    def test_files(self):
        data = os.path.realpath(self.data)
        for l in self.calls('openat') + self.calls('open'):
            m = re.search(r'"([^"]*)", ([A-Z_|]+)', l)
            if not m or '= -1' in l:
                continue
            path, flags = m.group(1), m.group(2)
            full = os.path.realpath(os.path.join(self.tmp, path))
            # ProcSubset=pid leaves only the process directories in /proc
            # (/sys stays readable: glibc counts CPUs there).
            if path.startswith('/proc/'):
                self.assertRegex(path, r'^/proc/(self|thread-self|\d+)/', l)
            if path.startswith('/dev/'):
                self.assertIn(path, PRIVATE_DEVICES, l)
            writes = re.search(r'O_WRONLY|O_RDWR|O_CREAT', flags)
            if writes and not path.startswith('/dev/'):
                self.assertTrue(full == data or full.startswith(data + '/'),
                                'writes outside the data directory: ' + l)

    def test_no_writable_executable_memory(self):
        for line in self.maps.splitlines():
            perms = line.split()[1]
            self.assertFalse('w' in perms and 'x' in perms, line)


if __name__ == '__main__':
    main()
