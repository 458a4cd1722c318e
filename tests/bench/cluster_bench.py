#!/usr/bin/env python3
"""cluster_bench.py - the cost of the Petrel cluster path on this machine.

Starts a three-server NATS cluster with JetStream (free loopback ports,
temporary stores) and two petreld nodes, then runs `petrel bench` with the
same load inside one node (publishers and subscribers on n1) and across
nodes (publishers on n1, subscribers on n2): QoS 0 and QoS 1, at full
speed and at a fixed rate, and reports throughput, p50/p99 latency, lost
messages and the CPU time the publishing node spent per message (utime +
stime from /proc/PID/stat over the run, divided by the messages it took).

Usage: tests/bench/cluster_bench.py [--duration S] [--rate N] [--json FILE]
Environment: PETRELD, PETREL (default: build/broker/petreld, build/cli/petrel).
Called alone or from compare.sh (--cluster).  It prints a Markdown table.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lib'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))
from petreltest import free_port, track  # noqa: E402
from nats_helpers import NatsCluster, wait_port  # noqa: E402

PETRELD = os.environ.get('PETRELD', os.path.join(ROOT, 'build', 'broker', 'petreld'))
PETREL = os.environ.get('PETREL', os.path.join(ROOT, 'build', 'cli', 'petrel'))
TICKS = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


class Node:
    def __init__(self, name, urls):
        self.dir = tempfile.mkdtemp(prefix='petrel-cbench-')
        self.port = free_port()
        conf = os.path.join(self.dir, 'petreld.conf')
        with open(conf, 'w') as f:
            f.write('listen = 127.0.0.1:%d\ndata_dir = %s\nnode_name = %s\n'
                    'cluster_nats = %s\nlog_level = warning\nmax_connections_per_source = 0\n'
                    'sys_interval = 1\n'
                    % (self.port, os.path.join(self.dir, 'data'), name, urls))
        os.makedirs(os.path.join(self.dir, 'data'))
        self.log = open(os.path.join(self.dir, 'petreld.log'), 'wb')
        self.proc = track(subprocess.Popen([PETRELD, '-c', conf], stdin=subprocess.DEVNULL,
                                           stdout=self.log, stderr=subprocess.STDOUT))
        if not wait_port(self.port):
            raise SystemExit('petreld %s did not start' % name)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)


def sys_counter(node, name):
    """A $SYS counter of node (published each second), or -1."""
    r = subprocess.run(['mosquitto_sub', '-p', str(node.port), '-t', '$SYS/broker/' + name,
                        '-C', '1', '-W', '3'], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True)
    try:
        return int(r.stdout.split()[0])
    except (ValueError, IndexError):
        return -1


def find(obj, key):
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            r = find(v, key)
            if r is not None:
                return r
    return None


def bench(pub, sub, qos, duration, rate):
    args = [PETREL, 'bench', '-p', str(pub.port), '--sub-port', str(sub.port), '--json',
            '--no-progress', '-q', str(qos), '-D', str(duration), '-t', 'cb/%p',
            '-T', 'cb/#', '--allow-loss']
    if qos:
        args += ['-w', '100' if not rate else '1000']
    if rate:
        args += ['-r', str(rate)]
    retried = sys_counter(pub, 'cluster/stream/retried')
    before = cpu_seconds(pub.proc.pid)
    r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=duration + 120)
    cpu = cpu_seconds(pub.proc.pid) - before
    try:
        j = json.loads(r.stdout)
    except ValueError:
        raise SystemExit('petrel bench failed: %s %s' % (r.stdout[-500:], r.stderr[-500:]))
    pubd = j['published']
    lat = find(j, 'latency_us') or {}
    n = pubd['acked'] if qos else pubd['sent']
    return {'msgs_per_sec': pubd['msgs_per_sec'] if qos else n / max(1e-9, pubd['seconds']),
            'p50_ms': lat.get('p50', 0) / 1e3, 'p99_ms': lat.get('p99', 0) / 1e3,
            'lost': j['delivery']['lost'], 'acked_lost': j['delivery']['acked_lost'],
            'messages': n, 'pub_cpu_us_per_msg': cpu * 1e6 / max(1, n),
            'js_retried': sys_counter(pub, 'cluster/stream/retried') - retried}


def resume(queue_on, connect_to, client, n):
    """A persistent session `client` (subscribed to tk/#, QoS 1, offline)
    gets n QoS 1 messages published on queue_on; then it connects to
    connect_to.  Returns (seconds from the connect to the last message,
    messages received); the receiver counts them itself."""
    pub = subprocess.run(['mosquitto_pub', '-p', str(queue_on.port), '-q', '1', '-t', 'tk/m',
                          '-l'], input=''.join('%d\n' % i for i in range(n)), text=True,
                         capture_output=True, timeout=120)
    if pub.returncode != 0:
        raise SystemExit('mosquitto_pub failed: %s' % pub.stderr)
    time.sleep(1.0)  # queued on every node that routes to it
    t0 = time.monotonic()
    r = subprocess.run(['mosquitto_sub', '-p', str(connect_to.port), '-c', '-i', client, '-q', '1',
                        '-t', 'tk/#', '-C', str(n), '-W', '60'], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=90)
    return time.monotonic() - t0, len(r.stdout.split())


def sessions(nodes, counts):
    """A session's move between nodes against its resumption on the same
    node, with n messages queued: the time to have them all."""
    rows = []
    for n in counts:
        client = 'tk-%d' % n
        subprocess.run(['mosquitto_sub', '-p', str(nodes[0].port), '-c', '-i', client, '-q', '1',
                        '-t', 'tk/#', '-E'], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
        secs, got = resume(nodes[0], nodes[1], client, n)      # b1 -> b2
        rows.append({'queued': n, 'where': 'moved to another node', 'seconds': secs,
                     'received': got})
        secs, got = resume(nodes[1], nodes[1], client, n)      # on b2 again
        rows.append({'queued': n, 'where': 'resumed on its node', 'seconds': secs,
                     'received': got})
        for r in rows[-2:]:
            sys.stderr.write('%r\n' % r)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--duration', type=float, default=4)
    ap.add_argument('--rate', type=int, default=10000)
    ap.add_argument('--json')
    ap.add_argument('--qos', default='0,1', help='the QoS levels to run, e.g. 1')
    ap.add_argument('--sessions', default='1000,10000',
                    help='queued messages of the session moves to time ("" for none)')
    o = ap.parse_args()
    nats = NatsCluster().start()
    nodes = []
    try:
        nodes = [Node('b1', nats.urls), Node('b2', nats.urls)]
        time.sleep(8)  # JetStream elects its leaders; both consumers bind
        results = []
        for qos in [int(q) for q in o.qos.split(',')]:
            for rate in (0, o.rate):
                for where, sub in (('one node', nodes[0]), ('across nodes', nodes[1])):
                    r = bench(nodes[0], sub, qos, o.duration, rate)
                    r.update(qos=qos, rate=rate or 'full', where=where)
                    results.append(r)
                    sys.stderr.write('%r\n' % r)
        print('| QoS | load | where | msg/s | p50 ms | p99 ms | lost (acked) | '
              'publishing node CPU us/msg | JetStream publishes again |')
        print('|---|---|---|---|---|---|---|---|---|')
        for r in results:
            print('| %d | %s | %s | %.0f | %.2f | %.2f | %d (%d) | %.1f | %d |' % (
                r['qos'], r['rate'] if r['rate'] == 'full' else '%d msg/s' % r['rate'],
                r['where'], r['msgs_per_sec'], r['p50_ms'], r['p99_ms'], r['lost'],
                r['acked_lost'], r['pub_cpu_us_per_msg'], r['js_retried']))
        moves = sessions(nodes, [int(n) for n in o.sessions.split(',') if n])
        if moves:
            print()
            print('| session with N QoS 1 messages queued | connects | time to have them all | '
                  'received |')
            print('|---|---|---|---|')
            for r in moves:
                print('| %d | %s | %.3f s | %d |' % (r['queued'], r['where'], r['seconds'],
                                                     r['received']))
        if o.json:
            with open(o.json, 'w') as f:
                json.dump({'load': results, 'sessions': moves}, f, indent=1)
    finally:
        for n in nodes:
            n.stop()
        nats.remove()


if __name__ == '__main__':
    main()
