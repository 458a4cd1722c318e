"""petreltest.py - what every Python test and benchmark script of Petrel
shares: the tracking of the processes it starts, free ports of 127.0.0.1,
and one broker launcher (temporary directory, log file, bounded start-up
wait, stop, sanitizer check) that tests/integration/harness.py,
tests/client/clienttest.py, tests/bench/compare.py and
tests/bench/store_figures.py each extend with their own configuration and
readiness test.

Importing it arranges that every process passed to track() is killed when
the interpreter exits, also when it is killed with SIGTERM (as meson does on
a timeout), so that no broker outlives the run.
"""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SANITIZER_MARKERS = ('ERROR: AddressSanitizer', 'runtime error:', 'LeakSanitizer',
                     'ERROR: UndefinedBehaviorSanitizer')
MOSQUITTO_PUB = shutil.which('mosquitto_pub') or '/usr/bin/mosquitto_pub'
MOSQUITTO_SUB = shutil.which('mosquitto_sub') or '/usr/bin/mosquitto_sub'
MOSQUITTO_PASSWD = shutil.which('mosquitto_passwd') or '/usr/bin/mosquitto_passwd'

# ---------------------------------------------------------------- processes

# Every process we start, so that nothing outlives the run.
_children = []


def track(proc):
    """Registers a Popen to be killed at exit; returns it."""
    _children.append(proc)
    return proc


def kill_children():
    for p in _children:
        if p.poll() is None:
            try:
                # A SIGSTOPped process needs SIGCONT to die cleanly.
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait(5)
            except Exception:
                pass


def _on_sigterm(signum, frame):
    # meson (or timeout(1)) sends SIGTERM: clean up, then die.
    kill_children()
    os._exit(128 + signum)


atexit.register(kill_children)
signal.signal(signal.SIGTERM, _on_sigterm)


# -------------------------------------------------------------------- ports

def free_port():
    """A port of 127.0.0.1 that was free a moment ago (for brokers that
    cannot listen on port 0 and report the one they got)."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(port, host='127.0.0.1'):
    """True if something accepts TCP connections on host:port."""
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def reader(target):
    """A started daemon thread running target() (a loop reading a pipe)."""
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t


def end_process(proc, timeout=5.0):
    """SIGTERM, then SIGKILL if it is still there after `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def rss_kib(pid, field='VmRSS'):
    """A /proc/PID/status figure in KiB (None if the process is gone)."""
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# ------------------------------------------------------------ configuration

def petreld_listeners(text):
    """The (host, port) pairs of petreld's "listening on" lines in a log,
    once it has also logged that it is ready; None before."""
    listeners = [(h.strip('[]'), int(p)) for h, p in
                 re.findall(r'listening on (\S+):(\d+)\s*$', text, re.M)]
    if listeners and re.search(r'\bready\b', text):
        return listeners
    return None


def mosquitto_root_lines():
    """As root, mosquitto drops to user 'mosquitto', which cannot write the
    test's temporary directory: keep it root."""
    return ['user root'] if os.geteuid() == 0 else []


# ------------------------------------------------------------------ brokers

class BrokerProcess:
    """One broker process (petreld, mosquitto, nats-server) with its own
    temporary directory and a log file there that collects its stdout and
    stderr across restarts.  Subclasses write the configuration and say
    when it is ready (wait_ready's `ready`).

    kind: its name in messages.  error: the exception a failed start
    raises.  poll: seconds between readiness checks."""

    kind = 'broker'
    error = AssertionError
    poll = 0.02

    def __init__(self, prefix='petrel-test-', log_name='broker.log', tmp=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix=prefix)
        self.log_path = os.path.join(self.tmp, log_name)
        self.log = None
        self.log_start = 0     # offset in the log file where this run began
        self.proc = None
        self.port = None
        self._pipe_thread = None

    # ---- start
    def spawn(self, cmd, pipe=False):
        """Starts cmd in the temporary directory, logging to the log file
        (through a pipe copied by a thread if `pipe`, so that the broker's
        own file-size limit cannot cut its log).  Does not wait."""
        self.close_log()   # of a run that failed to start
        try:
            self.log_start = os.path.getsize(self.log_path)
        except OSError:
            self.log_start = 0
        self.log = open(self.log_path, 'ab')
        if pipe:
            self.proc = track(subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                               cwd=self.tmp))
            src, dst = self.proc.stdout, self.log
            self._pipe_thread = reader(lambda: self._copy_pipe(src, dst))
        else:
            self.proc = track(subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                               stdout=self.log, stderr=subprocess.STDOUT,
                                               cwd=self.tmp))
        return self.proc

    @staticmethod
    def _copy_pipe(src, dst):
        try:
            for chunk in iter(lambda: src.read1(65536), b''):
                dst.write(chunk)
                dst.flush()
        except (OSError, ValueError):
            pass

    def wait_ready(self, ready, timeout):
        """Polls ready(log text of this run) until it returns something
        true, and returns that; raises self.error if the process exits
        first or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = ready(self.run_log_text())
            if r:
                return r
            if self.proc.poll() is not None:
                raise self.error('%s exited with %s before it was ready\n%s'
                                 % (self.kind, self.proc.returncode, self.tail()))
            time.sleep(self.poll)
        raise self.error('%s not ready after %.0fs\n%s' % (self.kind, timeout, self.tail()))

    def petreld_ready(self, text):
        """A wait_ready test for petreld: once ready, self.port is its first
        listener's."""
        listeners = petreld_listeners(text)
        if listeners:
            self.port = listeners[0][1]
        return listeners

    # ---- log
    def log_text(self):
        try:
            with open(self.log_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def run_log_text(self):
        """The log of the current (or last) run only."""
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(self.log_start)
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def tail(self, n=40):
        lines = self.log_text().splitlines()
        return ('---- %s log, last %d of %d lines ----\n' % (self.kind, min(n, len(lines)),
                                                            len(lines)) +
                '\n'.join(lines[-n:]) + '\n---- end of %s log ----' % self.kind)

    def sanitizer_report(self):
        """The first sanitizer marker in the log, or None."""
        text = self.log_text()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                return marker
        return None

    # ---- process
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def suspend(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        """SIGKILL (after SIGCONT, in case it is stopped)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        self.close_log()

    def terminate(self, timeout=15.0):
        """SIGTERM and wait up to `timeout` seconds (then SIGKILL).  Returns
        False if it had to be killed, True otherwise."""
        clean = True
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                clean = False
        self.close_log()
        return clean

    def close_log(self):
        if self._pipe_thread is not None:
            self._pipe_thread.join(5)
            self._pipe_thread = None
        if self.log is not None:
            try:
                self.log.close()
            except Exception:
                pass
            self.log = None

    def remove(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def keep(self, why):
        sys.stderr.write('%s files kept in %s (%s)\n' % (self.kind, self.tmp, why))
