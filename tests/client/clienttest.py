"""clienttest.py - what the libpetrel/petrel integration tests share.

Brokers (petreld or Mosquitto) on free ports of 127.0.0.1 with temporary
directories; the scripted libpetrel client (driver.c) behind a small Python
wrapper; helpers to run the petrel CLI and the mosquitto tools.  Every wait
is bounded, and every process started here is killed at exit (also when
meson kills the test with SIGTERM): tests/lib's petreltest, shared with the
broker's integration tests and the benchmarks.  Paths come from the
environment that tests/client/meson.build sets.
"""

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'lib'))
import petreltest  # noqa: E402  (needs the path above)
from petreltest import (MOSQUITTO_PASSWD, MOSQUITTO_PUB, MOSQUITTO_SUB,  # noqa: E402,F401
                        SANITIZER_MARKERS, free_port, track)

PETRELD = os.environ.get('PETRELD', '')
PETREL = os.environ.get('PETREL_CLI', '')
DRIVER = os.environ.get('PETREL_DRIVER', '')
EXAMPLES = os.environ.get('PETREL_EXAMPLES', '')
MOSQUITTO = os.environ.get('MOSQUITTO', '/usr/sbin/mosquitto')

START_TIMEOUT = 20.0   # sanitizer builds start slowly
WAIT = 10.0            # default bound on any expected event


def have(path):
    return bool(path) and os.path.exists(path)


# ------------------------------------------------------------------ brokers

class Broker(petreltest.BrokerProcess):
    """Base: a broker process logging to a file in its own temp dir."""

    kind = '?'

    def __init__(self, port=None):
        super().__init__(prefix='petrel-client-test-')
        self.port = port
        self.stopped = False

    def _start(self, cmd, ready):
        self.spawn(cmd)
        return self.wait_ready(ready, START_TIMEOUT)

    def stop(self):
        """Terminates the broker and removes its files.  A broker that died
        on its own, or left sanitizer reports, gets its log printed (and
        kept) so the failure it caused can be explained."""
        if self.stopped:
            return
        self.stopped = True
        died = self.proc is not None and self.proc.poll() not in (None, -signal.SIGKILL)
        self.terminate()
        if died or self.sanitizer_report():
            sys.stderr.write('%s exited with %s on its own or reported errors; files kept in %s\n%s\n'
                             % (self.kind, self.proc.returncode, self.tmp, self.tail(80)))
            return
        self.remove()


class Petreld(Broker):
    """petreld on 127.0.0.1; `listens`: more `listen` lines after that one
    (their ports, in order, follow self.port in self.ports)."""
    kind = 'petreld'

    def __init__(self, port=None, listens=()):
        super().__init__(port)
        self.listens = list(listens)

    def start(self):
        if not have(PETRELD):
            raise unittest.SkipTest('petreld not built')
        data = os.path.join(self.tmp, 'data')
        os.makedirs(data, exist_ok=True)
        conf = os.path.join(self.tmp, 'petreld.conf')
        with open(conf, 'w') as f:
            f.write('listen = 127.0.0.1:%d\n' % (self.port or 0))
            for line in self.listens:
                f.write('listen = %s\n' % line)
            f.write('data_dir = %s\n' % data)
            f.write('log_level = info\n')
        listeners = self._start([PETRELD, '-c', conf], petreltest.petreld_listeners)
        self.ports = [p for h, p in listeners if h == '127.0.0.1']
        self.port = self.ports[0] if self.listens else self.ports[-1]
        return self


class Mosquitto(Broker):
    kind = 'mosquitto'

    def __init__(self, port=None, persistence=False, passwords=None, extra=()):
        super().__init__(port or free_port())
        self.extra = list(extra)     # more mosquitto.conf lines
        self.port_chosen = port is not None
        self.started_once = False
        self.persistence = persistence
        self.passwords = passwords   # {user: password}: anonymous refused

    def start(self):
        """Starts (or restarts, on the same port) the broker.  Mosquitto
        cannot listen on port 0, so a free port is picked first; if another
        test took it meanwhile, another one is tried."""
        for attempt in range(3):
            try:
                return self._start_once()
            except AssertionError:
                if (self.port_chosen or self.started_once or attempt == 2
                        or 'Address already in use' not in self.log_text()):
                    raise
                self.port = free_port()

    def _start_once(self):
        if not have(MOSQUITTO):
            raise unittest.SkipTest('mosquitto not installed')
        conf = os.path.join(self.tmp, 'mosquitto.conf')
        lines = ['listener %d 127.0.0.1' % self.port,
                 'log_dest stderr',
                 'log_type all',
                 'max_keepalive 65535']
        if self.passwords:
            pw = os.path.join(self.tmp, 'passwords')
            open(pw, 'w').close()
            for user, password in self.passwords.items():
                subprocess.run([MOSQUITTO_PASSWD, '-b', pw, user, password], check=True,
                               capture_output=True, timeout=10)
            lines += ['allow_anonymous false', 'password_file %s' % pw]
        else:
            lines.append('allow_anonymous true')
        if self.persistence:
            store = os.path.join(self.tmp, 'store')
            os.makedirs(store, exist_ok=True)
            # Saved on clean shutdown; also after every change, so that even
            # a SIGKILL keeps sessions.
            lines += ['persistence true', 'persistence_location %s/' % store,
                      'autosave_interval 1', 'autosave_on_changes true']
        else:
            lines.append('persistence false')
        lines += self.extra
        lines += petreltest.mosquitto_root_lines()
        with open(conf, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        self._start([MOSQUITTO, '-c', conf],
                    lambda text: re.search(r'mosquitto version \S+ running', text))
        self.started_once = True
        return self


BROKERS = {'petreld': Petreld, 'mosquitto': Mosquitto}


class SharedBroker:
    """Mixin for a TestCase: one broker of `broker_kind` (a BROKERS key) for
    the whole class, in cls.broker and cls.port.  needs_cli: the class is
    skipped when the petrel CLI is not built."""

    broker_kind = None
    needs_cli = False

    @classmethod
    def setUpClass(cls):
        if cls.needs_cli and not have(PETREL):
            raise unittest.SkipTest('petrel not built')
        cls.broker = BROKERS[cls.broker_kind]().start()
        cls.port = cls.broker.port

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()


# ------------------------------------------------------------------- driver

class Driver:
    """driver.c: a libpetrel client scripted over stdin; events on stdout."""

    def __init__(self, port, *args):
        if not have(DRIVER):
            raise unittest.SkipTest('driver not built')
        self.cmd = [DRIVER, '--port', str(port)] + [str(a) for a in args]
        self.proc = track(subprocess.Popen(self.cmd, stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        self.cond = threading.Condition()
        self.pending = []      # events not yet consumed by expect()
        self.history = []
        self.eof = False
        self.reader = petreltest.reader(self._read)
        self.expect('ready')

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode('utf-8', 'replace').rstrip('\n')
            with self.cond:
                self.history.append(line)
                self.pending.append(line)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def send(self, line):
        self.proc.stdin.write((line + '\n').encode())
        self.proc.stdin.flush()

    def _take(self, pattern):
        for i, line in enumerate(self.pending):
            m = re.match(pattern, line)
            if m:
                del self.pending[i]
                return m
        return None

    def expect(self, pattern, timeout=WAIT):
        """Consumes and returns (the match of) the first unconsumed event
        matching regex `pattern`, waiting for it if needed.  Events that do
        not match stay for later expect() calls, so the order in which
        independent events arrive does not matter."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = self._take(pattern)
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if self.eof:
                    raise AssertionError('driver exited (%s) waiting for %r; events:\n%s'
                                         % (self.proc.poll(), pattern,
                                            '\n'.join(self.history[-30:])))
                self.cond.wait(left)
        raise AssertionError('driver: no %r within %.1fs; last events:\n%s'
                             % (pattern, timeout, '\n'.join(self.history[-30:])))

    def call(self, line, timeout=WAIT):
        """Sends a command and returns its `ok ... id=N` id (asserts ok)."""
        name = line.split(' ', 1)[0]
        self.send(line)
        m = self.expect(r'(ok|err) %s(?: id=(\d+))?(?: (\S+))?$' % re.escape(name), timeout)
        if m.group(1) != 'ok':
            raise AssertionError('driver: %r failed: %s' % (line, m.group(3)))
        return int(m.group(2) or 0)

    def messages(self, count, timeout=WAIT):
        """The next `count` messages as (topic, qos, retain, dup, payload)."""
        out = []
        for _ in range(count):
            m = self.expect(r'message topic=(\S*) qos=(\d) retain=(\d) dup=(\d) payload=(.*)$',
                            timeout)
            out.append((m.group(1), int(m.group(2)), m.group(3) == '1', m.group(4) == '1',
                        m.group(5)))
        return out

    def no_event(self, pattern, wait=0.5):
        """Asserts that no event matching `pattern` is pending or arrives
        within `wait` seconds."""
        deadline = time.monotonic() + wait
        with self.cond:
            while True:
                for line in self.pending:
                    if re.match(pattern, line):
                        raise AssertionError('driver: unexpected %r' % line)
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    return
                self.cond.wait(left)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send('quit')
                self.proc.stdin.close()
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)
        self.reader.join(2)
        err = self.proc.stderr.read().decode('utf-8', 'replace')
        for marker in ('AddressSanitizer', 'runtime error:', 'LeakSanitizer'):
            if marker in err:
                raise AssertionError('sanitizer report from the driver:\n' + err)
        if self.proc.returncode not in (0, -signal.SIGKILL):
            raise AssertionError('driver exited with %s:\n%s' % (self.proc.returncode, err))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


# ---------------------------------------------------------------- processes

def run(cmd, timeout=30, input=None, env=None):
    """Runs a command to completion; returns CompletedProcess (text)."""
    return subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, env=env,
                          text=True if input is None or isinstance(input, str) else False)


class Background:
    """A command in the background whose stdout lines arrive on a queue."""

    def __init__(self, cmd, stdin=subprocess.DEVNULL, env=None):
        self.cmd = cmd
        self.proc = track(subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, env=env))
        self.lines = queue.Queue()
        self.out = []
        self.err = []
        self.reader = petreltest.reader(self._read)
        self.err_reader = petreltest.reader(self._read_err)

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode('utf-8', 'replace').rstrip('\n')
            self.out.append(line)
            self.lines.put(line)

    def _read_err(self):
        for raw in self.proc.stderr:
            self.err.append(raw.decode('utf-8', 'replace').rstrip('\n'))

    def wait_stderr(self, pattern, timeout=WAIT):
        """Waits for a stderr line matching regex `pattern` (e.g. a -d trace)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(re.search(pattern, l) for l in list(self.err)):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError('no %r on stderr of %s (exit %s); stderr: %r; stdout: %r'
                             % (pattern, self.cmd, self.proc.poll(), self.err, self.out))

    def line(self, timeout=WAIT):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError('%s: no output line within %.1fs; output so far: %r; stderr: %s'
                                 % (os.path.basename(self.cmd[0]), timeout, self.out,
                                    self.stderr_now()))

    def stderr_now(self):
        return '\n'.join(self.err)

    def wait(self, timeout=WAIT):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError('%s did not exit within %.1fs' % (self.cmd, timeout))
        self.reader.join(2)
        self.err_reader.join(2)
        return rc

    def stop(self):
        petreltest.end_process(self.proc)


def bench_report(r):
    """The --json object of a `petrel bench` run (the last line of its
    stdout)."""
    lines = r.stdout.strip().splitlines()
    if not lines:
        raise AssertionError('no report; exit %d, stderr: %s' % (r.returncode, r.stderr))
    return json.loads(lines[-1])


def wait_until(pred, timeout=WAIT, what='condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError('timed out after %.1fs waiting for %s' % (timeout, what))


def main():
    unittest.main(verbosity=2)
