"""harness.py - start a real broker for the integration tests and talk to it.

The broker under test is petreld (path in $PETRELD, set by meson) or, with
PETREL_TEST_BROKER=mosquitto, the reference broker, so that every test can be
checked against a known-good implementation.  Each broker gets a temporary
directory, a generated configuration file and a free port; its stderr goes to
a file whose tail is printed when a test fails.  Stopping it sends SIGTERM and
asserts a clean exit without sanitizer reports.  Every wait is bounded.
"""

import atexit
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import mqttraw

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

BROKER_KIND = os.environ.get('PETREL_TEST_BROKER', 'petreld')
if BROKER_KIND not in ('petreld', 'mosquitto'):
    sys.exit('PETREL_TEST_BROKER must be petreld or mosquitto')
IS_MOSQUITTO = BROKER_KIND == 'mosquitto'
PETRELD = os.environ.get('PETRELD') or os.path.join(REPO, 'build', 'broker', 'petreld')
MOSQUITTO = os.environ.get('MOSQUITTO', '/usr/sbin/mosquitto')
MOSQUITTO_PUB = shutil.which('mosquitto_pub') or '/usr/bin/mosquitto_pub'
MOSQUITTO_SUB = shutil.which('mosquitto_sub') or '/usr/bin/mosquitto_sub'

START_TIMEOUT = 20.0   # generous: ASan builds start slower
STOP_TIMEOUT = 15.0
# Extra seconds allowed past 1.5 x keep alive before a silent client must be
# gone.  mosquitto 2.0.11 checks keep alives only every few seconds.
KEEPALIVE_SLACK = 6.5 if IS_MOSQUITTO else 1.0
SANITIZER_MARKERS = ('ERROR: AddressSanitizer', 'runtime error:', 'LeakSanitizer',
                     'ERROR: UndefinedBehaviorSanitizer')

# Every process we start, so that nothing outlives the test run.
_children = []


def _kill_children():
    for p in _children:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except Exception:
                pass


atexit.register(_kill_children)


def _on_sigterm(signum, frame):
    # meson sends SIGTERM on timeout: clean up, then die.
    _kill_children()
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _on_sigterm)


def track(proc):
    _children.append(proc)
    return proc


def free_port():
    """A port that was free a moment ago (for brokers that cannot use 0)."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ipv6_loopback_available():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(('::1', 0))
        s.close()
        return True
    except OSError:
        return False


def _size(v):
    """'1M' -> bytes, for brokers that do not take suffixes."""
    if isinstance(v, int):
        return v
    m = re.fullmatch(r'(\d+)([kKmMgG]?)', str(v).strip())
    if not m:
        return v
    mult = {'': 1, 'k': 1024, 'm': 1024 ** 2, 'g': 1024 ** 3}[m.group(2).lower()]
    return int(m.group(1)) * mult


class BrokerError(AssertionError):
    pass


class Broker:
    """One broker process.

    settings: petreld configuration keys (translated for mosquitto).
    args: extra petreld command-line arguments.
    config_text: write this configuration file verbatim instead (petreld).
    use_config: False to start petreld without -c (args only).
    wrapper: a command prefix that execs the broker (e.g. ['prlimit', ...]).
    log_pipe: stderr goes through a pipe that a thread copies to the log
      file, so that the broker's own file-size limit cannot cut its log.
    persistence: mosquitto only: persistence true in the data directory
      (petreld always keeps its store there).

    The same Broker can be started again on its data directory after
    stop(keep=True) or kill(): see restart() and crash_restart().
    """

    def __init__(self, settings=None, args=None, config_text=None, use_config=True,
                 wrapper=None, log_pipe=False, persistence=False):
        self.settings = dict(settings or {})
        self.args = list(args or [])
        self.config_text = config_text
        self.use_config = use_config
        self.wrapper = list(wrapper or [])
        self.log_pipe = log_pipe
        self.persistence = persistence
        self.log_start = 0     # offset in the log file where this run began
        self.runs = 0
        self._pipe_thread = None
        self._stopped = False
        self.tmp = tempfile.mkdtemp(prefix='petrel-it-')
        self.data_dir = os.path.join(self.tmp, 'data')
        os.mkdir(self.data_dir)
        self.conf_path = os.path.join(self.tmp, 'broker.conf')
        self.log_path = os.path.join(self.tmp, 'stderr.log')
        self.proc = None
        self.port = None
        self.listeners = []   # (host, port) from "listening on" lines
        self.host = '127.0.0.1'

    # ---- configuration
    def _petreld_conf(self):
        if self.config_text is not None:
            return self.config_text
        lines = ['# generated by tests/integration/harness.py',
                 'listen = 127.0.0.1:0',
                 'data_dir = %s' % self.data_dir,
                 'log_level = info']
        for k, v in self.settings.items():
            if k == 'listen':
                vals = v if isinstance(v, (list, tuple)) else [v]
                lines = [l for l in lines if not l.startswith('listen =')]
                lines += ['listen = %s' % x for x in vals]
            else:
                lines = [l for l in lines if not l.startswith(k + ' =')]
                lines.append('%s = %s' % (k, v))
        return '\n'.join(lines) + '\n'

    def _mosquitto_conf(self):
        self.port = free_port()
        lines = ['listener %d 127.0.0.1' % self.port,
                 'allow_anonymous true',
                 'persistence %s' % ('true' if self.persistence else 'false'),
                 'log_dest stderr',
                 'log_type all',
                 'connection_messages true']
        if self.persistence:
            lines.append('persistence_location %s/' % self.data_dir)
        if os.geteuid() == 0:
            lines.append('user root')
        names = {'max_inflight': 'max_inflight_messages',
                 'max_queued_messages': 'max_queued_messages',
                 'max_queued_bytes': 'max_queued_bytes',
                 'max_keepalive': 'max_keepalive',
                 'max_qos': 'max_qos',
                 'sys_interval': 'sys_interval',
                 'max_connections': 'max_connections'}
        for k, v in self.settings.items():
            if k in names:
                lines.append('%s %s' % (names[k], v))
            elif k == 'max_packet_size':
                lines.append('max_packet_size %d' % _size(v))
            # connect_timeout, log_level, data_dir, ...: no mosquitto equivalent
        return '\n'.join(lines) + '\n'

    # ---- life cycle
    def start(self):
        self._launch()
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _launch(self):
        """Writes the configuration and starts the process (not waiting)."""
        if IS_MOSQUITTO:
            with open(self.conf_path, 'w') as f:
                f.write(self._mosquitto_conf())
            cmd = [MOSQUITTO, '-c', self.conf_path]
        else:
            if not os.path.exists(PETRELD):
                raise unittest.SkipTest('petreld not built at %s' % PETRELD)
            cmd = [PETRELD]
            if self.use_config:
                with open(self.conf_path, 'w') as f:
                    f.write(self._petreld_conf())
                cmd += ['-c', self.conf_path]
            cmd += self.args
        cmd = self.wrapper + cmd
        self.cmd = cmd
        try:
            self.log_start = os.path.getsize(self.log_path)
        except OSError:
            self.log_start = 0
        self.runs += 1
        self._stopped = False
        self.log = open(self.log_path, 'ab')
        if self.log_pipe:
            self.proc = track(subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                               cwd=self.tmp))
            self._pipe_thread = threading.Thread(target=self._copy_pipe,
                                                 args=(self.proc.stdout, self.log), daemon=True)
            self._pipe_thread.start()
        else:
            self.proc = track(subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                               stdout=self.log, stderr=subprocess.STDOUT,
                                               cwd=self.tmp))

    @staticmethod
    def _copy_pipe(src, dst):
        try:
            for chunk in iter(lambda: src.read1(65536), b''):
                dst.write(chunk)
                dst.flush()
        except (OSError, ValueError):
            pass

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.run_log_text()
            if IS_MOSQUITTO:
                if re.search(r'mosquitto version \S+ running', text):
                    self.listeners = [('127.0.0.1', self.port)]
                    return
            else:
                self.listeners = [(h.strip('[]'), int(p)) for h, p in
                                  re.findall(r'listening on (\S+):(\d+)\s*$', text, re.M)]
                if self.listeners and re.search(r'\bready\b', text):
                    self.host, self.port = self.listeners[0]
                    return
            if self.proc.poll() is not None:
                raise BrokerError('broker exited with %s before it was ready\n%s'
                                  % (self.proc.returncode, self.tail()))
            time.sleep(0.02)
        raise BrokerError('broker not ready after %.0fs\n%s' % (START_TIMEOUT, self.tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

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

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def db_path(self):
        return os.path.join(self.data_dir, 'mosquitto.db' if IS_MOSQUITTO else 'petrel.db')

    def tail(self, n=60):
        lines = self.log_text().splitlines()
        return ('---- broker (%s) stderr, last %d of %d lines ----\n' %
                (BROKER_KIND, min(n, len(lines)), len(lines)) +
                '\n'.join(lines[-n:]) + '\n---- end of broker stderr ----')

    def wait_log(self, pattern, timeout=5.0):
        """Waits until the broker's stderr matches the regex pattern."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log_text(), re.M)
            if m:
                return m
            time.sleep(0.02)
        return None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._close_log()

    def _close_log(self):
        if self._pipe_thread is not None:
            self._pipe_thread.join(5)
            self._pipe_thread = None
        try:
            self.log.close()
        except Exception:
            pass

    def crash_restart(self):
        """SIGKILL, then start again on the same data directory."""
        self.kill()
        return self.start()

    def restart(self):
        """SIGTERM (asserting a clean exit), then start again on the same
        data directory."""
        self.stop(keep=True)
        return self.start()

    def run_to_exit(self, timeout=10.0):
        """Starts the broker expecting it to exit by itself (a start-up
        failure).  Returns (exit status, log of this run); the status is
        None if it was still running after timeout (it is killed then)."""
        self._launch()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
            self.proc.kill()
            self.proc.wait(5)
        self._close_log()
        return rc, self.run_log_text()

    def inspect(self, args=None, timeout=20.0):
        """petreld --inspect with this broker's configuration file (or the
        given args instead); returns the CompletedProcess (text)."""
        if args is None:
            if not os.path.exists(self.conf_path):
                with open(self.conf_path, 'w') as f:
                    f.write(self._petreld_conf())
            args = ['-c', self.conf_path]
        return subprocess.run([PETRELD, '--inspect'] + list(args), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors='replace',
                              timeout=timeout)

    def sanitizer_report(self):
        text = self.log_text()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                return marker
        return None

    def stop(self, check=True, keep=False):
        """SIGTERM, then asserts exit code 0 and a clean sanitizer record.
        keep=True keeps the temporary directory (to start again on it)."""
        if self.proc is None:
            return
        if self._stopped:
            # stopped cleanly before (stop(keep=True)): only the clean-up
            if not keep:
                shutil.rmtree(self.tmp, ignore_errors=True)
            return []
        problems = []
        if self.proc.poll() is not None:
            problems.append('broker had already exited with %s' % self.proc.returncode)
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
                if self.proc.returncode != 0:
                    problems.append('broker exited with %s after SIGTERM' % self.proc.returncode)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                problems.append('broker did not exit within %.0fs of SIGTERM' % STOP_TIMEOUT)
        self._close_log()
        text = self.log_text()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                problems.append('sanitizer report in broker stderr (%r)' % marker)
                break
        if check and problems:
            raise BrokerError('; '.join(problems) + '\n' + self.tail(120))
        self._stopped = not problems
        if keep:
            pass
        elif not problems:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            sys.stderr.write('broker files kept in %s\n' % self.tmp)
        return problems


def skip_on_mosquitto(reason='petreld-specific behaviour'):
    return unittest.skipIf(IS_MOSQUITTO, reason)


class BrokerTestCase(unittest.TestCase):
    """Base class: one broker per test class (settings in `broker_settings`),
    checked after every test for being alive and stopped cleanly at the end."""

    broker_settings = {}
    broker = None

    @classmethod
    def setUpClass(cls):
        cls.broker = Broker(cls.broker_settings).start()
        cls.port = cls.broker.port

    @classmethod
    def tearDownClass(cls):
        b, cls.broker = cls.broker, None
        if b is not None:
            b.stop()

    def setUp(self):
        self._clients = []
        b = type(self).broker
        if b is not None and not b.alive():
            self.fail('broker is not running (exit %s)\n%s' % (b.proc.returncode, b.tail()))

    def tearDown(self):
        for c in reversed(self._clients):
            try:
                c.close()
            except Exception:
                pass
        b = type(self).broker
        if b is not None and not b.alive():
            self.fail('broker died during the test (exit %s)\n%s' % (b.proc.returncode, b.tail()))

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            b = type(self).broker
            if b is not None:
                sys.stderr.write('\n' + b.tail() + '\n')
        return out

    # ---- per-test brokers and clients
    def start_broker(self, settings=None, **kw):
        """A broker of this test only; stopped and checked at cleanup."""
        b = Broker(settings, **kw).start()
        self.addCleanup(b.stop)
        return b

    def topic(self, suffix=''):
        """A topic unique to this test, so tests can share a broker."""
        name = self.id().split('.', 1)[-1].replace('.', '/')
        return 't/%s/%s' % (name, suffix) if suffix else 't/' + name

    def raw(self, port=None, host='127.0.0.1'):
        c = mqttraw.RawClient(port or self.port, host=host)
        self._clients.append(c)
        return c

    def raw_connected(self, client_id='', port=None, **kw):
        c = self.raw(port)
        c.connect(client_id, **kw)
        return c

    def paho(self, client_id='', port=None, **kw):
        c = PahoClient(port or self.port, client_id, **kw)
        self._clients.append(c)
        return c

    def mosquitto_sub(self, topics, port=None, **kw):
        s = MosquittoSub(port or self.port, topics, **kw)
        self._clients.append(s)
        return s

    def mosquitto_pub(self, topic, message='', port=None, **kw):
        return mosquitto_pub(port or self.port, topic, message, **kw)

    def watcher(self, topic_filter=None):
        """A connected raw client subscribed (QoS 0) to this test's topics,
        used to check that others are untouched by a misbehaving client."""
        w = self.raw_connected()
        w.subscribe(topic_filter or self.topic('#'), expect_granted=[0])
        return w

    def assert_broker_serves(self, watcher, n=1):
        """A fresh client publishes and the watcher receives it."""
        pub = self.raw_connected()
        for i in range(n):
            payload = b'still-alive-%d-%f' % (i, time.time())
            pub.publish(self.topic('alive'), payload, qos=1)
            p = watcher.expect_publish(timeout=5)
            self.assertEqual(p.payload, payload)
        pub.disconnect()


# -------------------------------------------------------------- paho client

class PahoClient:
    """Eclipse Paho (MQTT 3.1.1) with blocking helpers and bounded waits."""

    def __init__(self, port, client_id='', clean_session=True, keepalive=60,
                 will=None, host='127.0.0.1'):
        import paho.mqtt.client as mqtt
        self.mqtt = mqtt
        self.port, self.host, self.keepalive = port, host, keepalive
        self.c = mqtt.Client(client_id=client_id, clean_session=clean_session,
                             protocol=mqtt.MQTTv311)
        if will is not None:
            self.c.will_set(will[0], will[1], will[2], will[3])
        self.messages = queue.Queue()
        self.cond = threading.Condition()
        self.connack = None
        self.subacks = {}
        self.disconnected = threading.Event()
        self.closing = False
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_disconnect = self._on_disconnect
        self.started = False

    def _on_connect(self, client, userdata, flags, rc):
        with self.cond:
            self.connack = (rc, flags.get('session present', 0))
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        self.messages.put(msg)

    def _on_subscribe(self, client, userdata, mid, granted):
        with self.cond:
            self.subacks[mid] = list(granted)
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, rc):
        self.disconnected.set()
        # No automatic reconnection: tests decide when to reconnect.
        if not self.closing:
            self.closing = True
            client.disconnect()

    def _wait(self, pred, timeout, what):
        with self.cond:
            if not self.cond.wait_for(pred, timeout):
                raise AssertionError('paho: timed out waiting for %s' % what)

    def connect(self, timeout=5.0, expect_rc=0):
        self.c.connect(self.host, self.port, self.keepalive)
        self.c.loop_start()
        self.started = True
        self._wait(lambda: self.connack is not None, timeout, 'CONNACK')
        rc, sp = self.connack
        if expect_rc is not None and rc != expect_rc:
            raise AssertionError('paho: CONNACK rc %d' % rc)
        return sp

    def subscribe(self, topic, qos=0, timeout=5.0):
        res, mid = self.c.subscribe(topic, qos)
        assert res == 0, 'paho subscribe failed: %r' % res
        self._wait(lambda: mid in self.subacks, timeout, 'SUBACK')
        return self.subacks[mid]

    def publish(self, topic, payload, qos=0, retain=False, timeout=5.0):
        info = self.c.publish(topic, payload, qos, retain)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise AssertionError('paho: publish to %s not completed in %.1fs' % (topic, timeout))

    def get(self, timeout=5.0):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError('paho: no message within %.1fs' % timeout)

    def expect_nothing(self, timeout=0.5):
        try:
            m = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError('paho: expected nothing, got %s %r' % (m.topic, m.payload))

    def disconnect(self):
        self.closing = True
        self.c.disconnect()
        if self.started:
            self.c.loop_stop()
            self.started = False

    def close(self):
        if self.started:
            self.disconnect()


# ---------------------------------------------------------- mosquitto clients

def mosquitto_pub(port, topic, message='', qos=0, retain=False, null=False,
                  extra=(), timeout=10.0):
    cmd = [MOSQUITTO_PUB, '-h', '127.0.0.1', '-p', str(port), '-V', 'mqttv311',
           '-t', topic, '-q', str(qos)]
    cmd += ['-n'] if null else ['-m', message]
    if retain:
        cmd.append('-r')
    cmd += list(extra)
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError('mosquitto_pub failed (%d): %s' % (r.returncode, r.stderr.decode()))
    return r


class MosquittoSub:
    """mosquitto_sub in the background; messages arrive on a queue as
    (qos, retain, topic, payload) parsed from a -F format line."""

    FMT = 'MSG %q %r %t %p'

    def __init__(self, port, topics, qos=0, client_id=None, clean=True,
                 keepalive=None, will=None, extra=(), verbose_format=None):
        if isinstance(topics, str):
            topics = [topics]
        # stdbuf: mosquitto_sub's stdio is block-buffered on a pipe
        cmd = ['stdbuf', '-oL', MOSQUITTO_SUB, '-h', '127.0.0.1', '-p', str(port), '-V', 'mqttv311',
               '-d', '-q', str(qos)]
        for t in topics:
            cmd += ['-t', t]
        if verbose_format:
            cmd += ['-v']
        else:
            cmd += ['-F', self.FMT]
        if client_id:
            cmd += ['-i', client_id]
        if not clean:
            cmd += ['-c']
        if keepalive:
            cmd += ['-k', str(keepalive)]
        if will:
            cmd += ['--will-topic', will[0], '--will-payload', will[1],
                    '--will-qos', str(will[2])]
            if will[3]:
                cmd += ['--will-retain']
        cmd += list(extra)
        self.cmd = cmd
        self.raw_format = bool(verbose_format)
        self.proc = track(subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        self.lines = queue.Queue()
        self.suback = threading.Event()
        self.output = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.decode('utf-8', 'replace').rstrip('\n')
            self.output.append(line)
            if line.startswith('Client ') and 'received SUBACK' in line:
                self.suback.set()
            elif (line.startswith('Client ') or line.startswith('Subscribed (mid')
                  or line == 'Timed out'):   # -W expired
                continue
            else:
                self.lines.put(line)

    def wait_subscribed(self, timeout=5.0):
        if not self.suback.wait(timeout):
            raise AssertionError('mosquitto_sub not subscribed in %.1fs: %s'
                                 % (timeout, '\n'.join(self.output)))
        return self

    def get_line(self, timeout=5.0):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError('mosquitto_sub: no message within %.1fs; output:\n%s'
                                 % (timeout, '\n'.join(self.output)))

    def get(self, timeout=5.0):
        """(qos, retain, topic, payload) of the next message."""
        line = self.get_line(timeout)
        if self.raw_format:
            return line
        parts = line.split(' ', 4)
        if len(parts) < 4 or parts[0] != 'MSG':
            raise AssertionError('mosquitto_sub: unexpected line %r' % line)
        payload = parts[4] if len(parts) > 4 else ''
        return int(parts[1]), parts[2] == '1', parts[3], payload

    def expect_nothing(self, timeout=0.5):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError('mosquitto_sub: expected nothing, got %r' % line)

    def wait_exit(self, timeout=5.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError('mosquitto_sub did not exit in %.1fs' % timeout)

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(5)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.reader.join(2)


# ------------------------------------------------- store (durability) helpers

def numbered(n, size=0):
    """The payload of message number n: 8 digits, padded to size bytes."""
    b = b'%08d' % n
    return b + b'.' * max(0, size - len(b))


def number_of(payload):
    return int(bytes(payload[:8]))


class PipelinedPublisher:
    """Publishes numbered QoS 1/2 messages over a raw socket as fast as the
    broker acknowledges them, with up to `window` in flight, and records
    every acknowledgement: PUBACK (QoS 1) or PUBREC (QoS 2) adds the number
    to `acked` (a PUBREL then completes the handshake).  It stops when all
    are done or the broker closes the connection (which is not an error:
    crash tests kill the broker under it)."""

    def __init__(self, port, topic, qos=1, window=20, payload_size=0, client_id='',
                 clean=True, keepalive=30, host='127.0.0.1'):
        assert qos in (1, 2)
        self.topic, self.qos, self.window, self.size = topic, qos, window, payload_size
        self.client = mqttraw.RawClient(port, host=host)
        self.client.connect(client_id, clean=clean, keepalive=keepalive)
        self.acked = []        # numbers, in acknowledgement order
        self.sent = []         # numbers, in sending order
        self.completed = 0     # QoS 2: PUBCOMPs received
        self.closed = False    # the broker closed the connection

    def run(self, count, start=0, stall_timeout=10.0):
        c = self.client
        inflight = {}          # pid -> number
        released = set()       # QoS 2 pids whose PUBREL was sent
        nxt, end = start, start + count
        while nxt < end or inflight:
            batch = []
            while len(inflight) < self.window and nxt < end:
                pid = c.pid()
                while pid in inflight:
                    pid = c.pid()
                inflight[pid] = nxt
                self.sent.append(nxt)
                batch.append(mqttraw.publish_packet(self.topic, numbered(nxt, self.size),
                                                    qos=self.qos, pid=pid))
                nxt += 1
            if batch and not c.try_send(b''.join(batch)):
                self.drain_after_close(inflight, released)
                break
            try:
                p = c.read_packet(stall_timeout)
            except mqttraw.Closed:
                self.closed = True
                break
            except mqttraw.Timeout:
                raise AssertionError('publisher: no acknowledgement within %.0fs (%d acked, '
                                     '%d in flight)' % (stall_timeout, len(self.acked),
                                                        len(inflight)))
            self._handle(p, inflight, released)
        return self

    def _handle(self, p, inflight, released):
        if p.type == mqttraw.PUBACK and self.qos == 1 and p.pid in inflight:
            self.acked.append(inflight.pop(p.pid))
        elif p.type == mqttraw.PUBREC and self.qos == 2 and p.pid in inflight \
                and p.pid not in released:
            self.acked.append(inflight[p.pid])
            released.add(p.pid)
            self.client.try_send(mqttraw.ack_packet(mqttraw.PUBREL, p.pid))
        elif p.type == mqttraw.PUBCOMP and self.qos == 2 and p.pid in released:
            released.discard(p.pid)
            inflight.pop(p.pid, None)
            self.completed += 1
        elif p.type != mqttraw.PINGRESP:
            raise AssertionError('publisher: unexpected %r' % p)

    def drain_after_close(self, inflight, released):
        """The send failed: take in what arrived before the close."""
        self.closed = True
        while True:
            try:
                p = self.client.read_packet(1.0)
            except (mqttraw.Closed, mqttraw.Timeout):
                return
            self._handle(p, inflight, released)

    def close(self):
        self.client.close()


class Collector:
    """A subscriber over a raw socket that acknowledges QoS 1 and 2 messages
    as a well-behaved client does, interleaved (the broker sends up to its
    inflight window at once), and records what arrived.  QoS 2 messages are
    acknowledged with PUBREC and completed with PUBCOMP on PUBREL."""

    def __init__(self, port, client_id, clean=False, keepalive=30, host='127.0.0.1',
                 ack=True):
        self.client = mqttraw.RawClient(port, host=host)
        self.connack = self.client.connect(client_id, clean=clean, keepalive=keepalive)
        self.session_present = self.connack.session_present
        self.ack = ack
        self.messages = []      # Packets, in arrival order
        self.pubrels = []       # pids of PUBRELs received
        self.awaiting_rel = set()
        self.closed = False

    def subscribe(self, topics):
        return self.client.subscribe(topics)

    def numbers(self):
        return [number_of(m.payload) for m in self.messages]

    def _handle(self, p):
        c = self.client
        if p.type == mqttraw.PUBLISH:
            self.messages.append(p)
            if self.ack and p.qos == 1:
                c.try_send(mqttraw.ack_packet(mqttraw.PUBACK, p.pid))
            elif self.ack and p.qos == 2:
                self.awaiting_rel.add(p.pid)
                c.try_send(mqttraw.ack_packet(mqttraw.PUBREC, p.pid))
        elif p.type == mqttraw.PUBREL:
            self.pubrels.append(p.pid)
            self.awaiting_rel.discard(p.pid)
            if self.ack:
                c.try_send(mqttraw.ack_packet(mqttraw.PUBCOMP, p.pid))
        elif p.type != mqttraw.PINGRESP:
            raise AssertionError('subscriber: unexpected %r' % p)

    def collect(self, done=None, idle=0.5, timeout=20.0):
        """Reads until done(self) is true and no handshake is open, then
        for `idle` seconds more (to catch extra copies); or until nothing
        arrived for `timeout` seconds, or the connection closed.  Returns
        self.messages."""
        deadline_idle = None
        last = time.monotonic()
        while True:
            finished = (done is None or done(self)) and not self.awaiting_rel
            now = time.monotonic()
            if finished and deadline_idle is None:
                deadline_idle = now + idle
            if deadline_idle is not None and now >= deadline_idle:
                return self.messages
            wait = (deadline_idle - now) if deadline_idle is not None else \
                max(0.01, last + timeout - now)
            try:
                p = self.client.read_packet(max(0.01, wait))
            except mqttraw.Closed:
                self.closed = True
                return self.messages
            except mqttraw.Timeout:
                if deadline_idle is None and time.monotonic() - last >= timeout:
                    return self.messages
                continue
            last = time.monotonic()
            self._handle(p)

    def disconnect(self):
        self.client.disconnect()

    def close(self):
        self.client.close()


def port_open(port, host='127.0.0.1'):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def main():
    """Entry point of every test file."""
    sys.stderr.write('integration tests against %s (%s)\n' %
                     (BROKER_KIND, MOSQUITTO if IS_MOSQUITTO else PETRELD))
    unittest.main(verbosity=2)
