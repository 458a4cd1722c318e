"""bridge_helpers.py - brokers for the bridge tests: a petreld whose
configuration ends with `bridge` sections, and Debian's mosquitto started
with its own configuration on a free port (as a remote, or as a Mosquitto
bridge for comparison).  Every wait is bounded."""

import os
import re
import shutil
import time

import harness
import petreltest
from harness import free_port
from http_helpers import HttpBroker

MOSQUITTO = os.environ.get('MOSQUITTO', '/usr/sbin/mosquitto')


def bridge_section(name, port, rules, host='127.0.0.1', **settings):
    """The text of a `bridge NAME` section: rules are 'out a/# qos=1' lines,
    settings more `key = value` lines (reconnect_min defaults to 1)."""
    settings.setdefault('reconnect_min', 1)
    settings.setdefault('reconnect_max', 2)
    lines = ['bridge %s' % name, '    address = %s:%d' % (host, port)]
    lines += ['    %s = %s' % (k, v) for k, v in settings.items()]
    lines += ['    %s' % r for r in rules]
    return '\n'.join(lines) + '\n'


class BridgedBroker(harness.Broker):
    """petreld with bridge sections after its ordinary settings; `sections`
    may be changed before a (re)start or a SIGHUP (rewrite())."""

    def __init__(self, sections=(), settings=None, **kw):
        super().__init__(settings=settings, **kw)
        self.sections = list(sections)

    def _petreld_conf(self):
        return super()._petreld_conf() + ''.join(self.sections)

    def rewrite(self):
        with open(self.conf_path, 'w') as f:
            f.write(self._petreld_conf())

    def wait_bridge(self, name, state='connected', timeout=15.0):
        """Waits for the log line of the bridge's state."""
        if state == 'connected':
            pat = r'bridge %s: connected to' % re.escape(name)
        else:
            pat = r'bridge %s: .*trying' % re.escape(name)
        return self.wait_log(pat, timeout=timeout)

    def count_log(self, pattern):
        return len(re.findall(pattern, self.log_text()))


class HttpBridgedBroker(HttpBroker):
    """The same with an HTTP listener that answers without a token
    (anonymous=read), for /api/v1/bridges and /metrics."""

    def __init__(self, sections, **kw):
        super().__init__(http_extra='anonymous=read', tokens=False, **kw)
        self.sections = list(sections)

    def _petreld_conf(self):
        return super()._petreld_conf() + ''.join(self.sections)

    def bridge_status(self, name):
        for b in self.get_json('/api/v1/bridges')['bridges']:
            if b['name'] == name:
                return b
        raise AssertionError('no bridge %s' % name)


def bridged_to_remote(test, name, rules, local=BridgedBroker, settings=None, **section):
    """A remote petreld and a local one (`local`, with `settings`) bridged
    to it by the section `name` (`rules`, `section` settings), both started
    and stopped when the test ends; returns (local, remote, the remote's
    port) once the bridge has connected (15 s at most)."""
    b_port = free_port()
    B = harness.Broker({'listen': '127.0.0.1:%d' % b_port}).start()
    test.addCleanup(B.stop)
    A = local([bridge_section(name, b_port, rules, **section)], settings=settings).start()
    test.addCleanup(A.stop)
    test.assertTrue(A.wait_log(r'bridge %s: connected to' % re.escape(name), 15), A.tail())
    return A, B, b_port


class Mosquitto(petreltest.BrokerProcess):
    """Debian's mosquitto on a free port of 127.0.0.1 with the given extra
    configuration lines; persistence in its own directory when asked."""

    def __init__(self, lines=(), persistence=False, port=None):
        super().__init__(prefix='petrel-mosq-', log_name='mosquitto.log')
        self.port = port or free_port()
        self.lines = list(lines)
        self.persistence = persistence
        self.conf_path = os.path.join(self.tmp, 'mosquitto.conf')

    def conf(self):
        lines = ['listener %d 127.0.0.1' % self.port,
                 'allow_anonymous true',
                 'log_dest stderr',
                 'log_type all',
                 'connection_messages true',
                 'persistence %s' % ('true' if self.persistence else 'false')]
        if self.persistence:
            lines.append('persistence_location %s/' % self.tmp)
        lines += petreltest.mosquitto_root_lines()
        return '\n'.join(lines + self.lines) + '\n'

    def start(self, timeout=15.0):
        if not os.path.exists(MOSQUITTO):
            import unittest
            raise unittest.SkipTest('mosquitto not installed')
        with open(self.conf_path, 'w') as f:
            f.write(self.conf())
        self.spawn([MOSQUITTO, '-c', self.conf_path])
        deadline = time.time() + timeout
        while time.time() < deadline:
            if petreltest.port_open(self.port):
                return self
            if self.proc.poll() is not None:
                raise AssertionError('mosquitto exited:\n' + self.tail())
            time.sleep(0.05)
        raise AssertionError('mosquitto did not listen:\n' + self.tail())

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.terminate(10.0)

    def close(self):
        self.stop()
        self.remove()


def persistent_sub(port, client_id, topic, qos=1):
    """Makes a persistent session subscribed to `topic` and leaves, so that
    the broker queues for it."""
    col = harness.Collector(port, client_id, clean=False)
    col.subscribe([(topic, qos)])
    col.client.close()


def collect_numbers(port, client_id, want, idle=1.0, timeout=30):
    """Comes back to that session and reads until every number of `want`
    (a set) has arrived; returns the numbers in arrival order.  The check
    is incremental: it runs after every packet."""
    seen, looked = set(), [0]

    def done(c):
        for m in c.messages[looked[0]:]:
            seen.add(harness.number_of(m.payload))
        looked[0] = len(c.messages)
        return len(seen & want) == len(want)
    col = harness.Collector(port, client_id, clean=False)
    col.collect(done=done, idle=idle, timeout=timeout)
    col.client.close()
    return col.numbers()


def wait_connects(broker, name, n, timeout=20.0):
    """Waits until the bridge's log says it connected n times; returns
    how many times it did."""
    pat = r'bridge %s: connected to' % re.escape(name)
    deadline = time.monotonic() + timeout
    while len(re.findall(pat, broker.log_text())) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(re.findall(pat, broker.log_text()))


def assert_once_each_side(test, subs, payloads, quiet=1.5):
    """Each subscriber (Paho, harness.PahoClient) gets every payload once:
    no copy more after `quiet` seconds (an echo over the bridge)."""
    for s in subs:
        test.assertEqual(sorted(s.get(5).payload for _ in payloads), sorted(payloads))
    for s in subs:
        s.expect_nothing(quiet)
        quiet = 0.2


def have_mosquitto():
    return os.path.exists(MOSQUITTO) and shutil.which('openssl') is not None
