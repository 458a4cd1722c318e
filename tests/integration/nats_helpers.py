"""nats_helpers.py - nats-server processes for the cluster tests and the
cluster bench: one server, or a cluster of three with routes, every one
with JetStream (its store in a temporary directory of its own), on free
ports of 127.0.0.1 only.  Each process is tracked (petreltest.track) so that
none outlives the run."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from petreltest import free_port, track

NATS_SERVER = '/usr/bin/nats-server'
for _p in ('/usr/bin/nats-server', '/usr/sbin/nats-server'):
    if os.path.exists(_p):
        NATS_SERVER = _p


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class NatsServer:
    """nats-server on a free loopback port with JetStream.  With `routes`
    (cluster ports of all servers) and `cluster_port` it is one server of
    a cluster named petrel-test.  start() again after stop() or kill()
    reuses the port and the store (a restart)."""

    def __init__(self, port=None, name=None, cluster_port=None, routes=()):
        self.port = port or free_port()
        self.name = name or 'nats-%d' % self.port
        self.cluster_port = cluster_port
        self.routes = routes
        self.dir = tempfile.mkdtemp(prefix='petrel-nats-')
        self.proc = None

    def config(self):
        lines = ['server_name: %s' % self.name,
                 'listen: 127.0.0.1:%d' % self.port,
                 'jetstream { store_dir: "%s" }' % os.path.join(self.dir, 'js')]
        if self.cluster_port:
            # no_advertise: clients learn no other server from this one, so
            # a node given one URL (the proxy of test_cluster_js) uses only it.
            lines += ['cluster {', '  name: petrel-test', '  no_advertise: true',
                      '  listen: 127.0.0.1:%d' % self.cluster_port,
                      '  routes: [']
            lines += ['    nats-route://127.0.0.1:%d' % p for p in self.routes]
            lines += ['  ]', '}']
        path = os.path.join(self.dir, 'nats.conf')
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        return path

    def start(self, wait=True):
        self.log = open(os.path.join(self.dir, 'nats.log'), 'ab')
        self.proc = track(subprocess.Popen(
            [NATS_SERVER, '-c', self.config()],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT))
        if wait and not wait_port(self.port):
            raise AssertionError('nats-server did not open port %d: %s' % (self.port, self.tail()))
        return self

    @property
    def url(self):
        return 'nats://127.0.0.1:%d' % self.port

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n=30):
        try:
            with open(os.path.join(self.dir, 'nats.log'), 'rb') as f:
                return b''.join(f.readlines()[-n:]).decode(errors='replace')
        except OSError:
            return ''

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def remove(self):
        self.stop()
        if os.environ.get('PETREL_KEEP_NATS'):  # for a post-mortem: its log and store
            sys.stderr.write('nats-server %s kept in %s\n' % (self.name, self.dir))
            return
        shutil.rmtree(self.dir, ignore_errors=True)


class NatsCluster:
    """Three nats-servers routed to one another, JetStream clustered."""

    def __init__(self, n=3):
        cports = [free_port() for _ in range(n)]
        self.servers = [NatsServer(name='nats-%d' % (i + 1), cluster_port=cports[i], routes=cports)
                        for i in range(n)]

    def start(self):
        for s in self.servers:
            s.start(wait=False)
        for s in self.servers:
            if not wait_port(s.port):
                raise AssertionError('nats-server %s did not start: %s' % (s.name, s.tail()))
        return self

    @property
    def urls(self):
        return ','.join(s.url for s in self.servers)

    def remove(self):
        for s in self.servers:
            s.remove()


class TcpProxy:
    """A TCP forwarder on a free loopback port to 127.0.0.1:target, to cut
    one petreld off from NATS: cut() closes the listening socket and every
    connection through it; mend() listens again on the same port."""

    def __init__(self, target):
        import threading
        self.threading = threading
        self.target = target
        self.port = free_port()
        self.lock = threading.Lock()
        self.socks = []
        self.listener = None

    def mend(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(('127.0.0.1', self.port))
        ls.listen(16)
        self.listener = ls
        self.threading.Thread(target=self._accept, args=(ls,), daemon=True).start()
        return self

    start = mend

    def _accept(self, ls):
        while True:
            try:
                a, _ = ls.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(('127.0.0.1', self.target), timeout=5)
            except OSError:
                a.close()
                continue
            b.settimeout(None)  # (the connect timeout would end an idle link)
            with self.lock:
                self.socks += [a, b]
            for x, y in ((a, b), (b, a)):
                self.threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        if self.listener:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    @property
    def url(self):
        return 'nats://127.0.0.1:%d' % self.port


def cluster_test(cls):
    """Decorates a test class that needs a cluster: petreld (not the
    Mosquitto run of the suite) and nats-server."""
    import harness  # (not for the bench, which does not use this)
    return harness.skip_on_mosquitto("a cluster is petreld's")(
        unittest.skipUnless(os.path.exists(NATS_SERVER), 'nats-server not installed')(cls))


class ClusterNodes:
    """For a test class (before harness.BrokerTestCase in its bases) whose
    setUpClass starts cls.nats (NatsServer or NatsCluster), maybe cls.proxy,
    and the petreld nodes cls.nodes: checks before each test that every
    node still runs, and stops them all at the end."""

    @classmethod
    def start_nodes(cls, urls, wait, **conf):
        """Starts petreld nodes n1..n3 (cls.nodes; cls.broker and cls.port
        are n1's): node i reaches NATS at urls(i) and gets conf besides;
        wait(node) is called for each once all are started."""
        import harness  # (not for the bench, which does not use this)
        cls.nodes = []
        for i in (1, 2, 3):
            cls.nodes.append(harness.Broker(dict({
                'cluster_nats': urls(i), 'node_name': 'n%d' % i,
                'sys_interval': 1}, **conf)).start())
        for b in cls.nodes:
            wait(b)
        cls.broker = cls.nodes[0]
        cls.port = cls.broker.port

    @classmethod
    def tearDownClass(cls):
        for b in cls.nodes:
            b.stop()
        cls.broker = None
        if getattr(cls, 'proxy', None):
            cls.proxy.cut()
        cls.nats.remove()

    def setUp(self):
        super().setUp()
        for b in self.nodes:
            if not b.alive():
                self.fail('node died: %s' % b.tail())

    def publish_and_kill(self, pub_node, topic, count, kill_after, victim, start, qos=1):
        """A numbered QoS 1 stream from pub_node; once kill_after are
        acknowledged, kill -9 `victim` (a Broker or a NatsServer).  Returns
        the publisher (its acked and sent lists)."""
        import harness  # (not for the bench, which does not use this)
        p = harness.PipelinedPublisher(pub_node.port, topic, qos=qos, window=50)
        t = threading.Thread(target=lambda: p.run(count, start=start, stall_timeout=20))
        t.start()
        deadline = time.monotonic() + 30
        while len(p.acked) < kill_after and t.is_alive() and time.monotonic() < deadline:
            time.sleep(0.002)
        victim.kill()
        t.join(60)
        self.assertFalse(t.is_alive(), 'publisher stuck')
        p.close()
        return p
