#!/usr/bin/python3
"""compare.py - Petrel, Mosquitto and NATS side by side (run it through
compare.sh, which installs Mosquitto and nats-server and builds what is
needed).

Each scenario runs against every broker in turn, A B C A B C, for --rounds
rounds; every run gets a freshly started broker with its own temporary
directory, so no run inherits another's sessions, queues or memory.  The
load is `petrel bench` (one process, libevent, the MQTT codec) with --json.
Per scenario the median of each broker and the ratios Petrel/Mosquitto and
Petrel/NATS are printed, and written as JSON and as the Markdown table in
docs/benchmarks.md (between the results markers; the rest of that file is
prose kept by hand).  A QoS 1 scenario is met only if Petrel lost no
message it had acknowledged, in any round.

The WebSocket scenarios (Sws*) compare petreld over ws:// with its own TCP
figures in the same run (target: ws at least 70% of TCP, and an idle ws
connection within 2x a plain one) and with the npm broker Aedes behind the
`ws` WebSocket server (tests/bench/aedes_ws.js; Debian's Mosquitto 2.0.11
refuses to open a WebSocket listener here); --aedes-dir names where
install-aedes.sh put its node_modules.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'lib'))
import petreltest  # noqa: E402  (needs the path above)
import compare_bridge  # noqa: E402  (the bridge scenarios, B1 B1r B2)

MOSQUITTO = shutil.which('mosquitto') or '/usr/sbin/mosquitto'
NODE = shutil.which('node') or '/usr/bin/node'
AEDES_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'aedes_ws.js')
# The WebSocket scenarios' three contestants: (column, broker kind, transport).
WS_PEERS = (('petreld_tcp', 'petreld', 'tcp'), ('petreld_ws', 'petreld', 'ws'),
            ('aedes_ws', 'aedes', 'ws'))
NATS = shutil.which('nats-server') or '/usr/sbin/nats-server'
PEERS = ('petreld', 'mosquitto', 'nats')
MD_BEGIN = '<!-- compare.sh results: begin -->'
MD_END = '<!-- compare.sh results: end -->'
# The WebSocket scenarios' table has a block of its own: `--only Sws`
# rewrites it and leaves the other one as it was (and the reverse).
MD_WS_BEGIN = '<!-- compare.sh websocket results: begin -->'
MD_WS_END = '<!-- compare.sh websocket results: end -->'

# Settings both brokers get, so that neither is held back by a queue or
# window limit the other does not have.
MAX_QUEUED = 200000
MAX_INFLIGHT = 1000


class Broker(petreltest.BrokerProcess):
    """A fresh petreld, mosquitto or nats-server on a free loopback port.
    `petrel_conf`: 'same' gives petreld the queue and window settings the
    peers get; 'defaults' leaves its shipped ones (the flow-control
    scenarios: a large queue would hide what a full one does); a number:
    its defaults with that max_queued_messages, which the peers get too (S8:
    a queue that fills within the run).  `extra`: more petreld settings
    (--petreld-set)."""

    error = RuntimeError
    poll = 0.01

    def __init__(self, kind, exe, persistent, petrel_conf='same', extra=(), ws=False):
        super().__init__(prefix='petrel-compare-%s-' % kind)
        self.kind, self.exe, self.persistent = kind, exe, persistent
        self.petrel_conf, self.extra = petrel_conf, list(extra)
        self.ws = ws            # petreld: listen on ws:// (self.port) too
        self.ws_dir = None      # aedes: the node_modules directory
    def start(self, timeout=60):
        conf = os.path.join(self.tmp, 'broker.conf')
        data = os.path.join(self.tmp, 'data')
        os.makedirs(data)
        if self.kind == 'petreld':
            lines = ['listen = 127.0.0.1:0', 'data_dir = %s' % data, 'log_level = notice']
            if self.petrel_conf == 'same':
                lines += ['max_queued_messages = %d' % MAX_QUEUED, 'max_queued_bytes = 0',
                          'max_inflight = %d' % MAX_INFLIGHT]
            elif isinstance(self.petrel_conf, int):
                lines += ['max_queued_messages = %d' % self.petrel_conf]
            lines += ['%s = %s' % kv for kv in self.extra]
            if self.ws:
                lines.insert(1, 'listen = 127.0.0.1:0 ws')
        elif self.kind == 'aedes':
            self.port = petreltest.free_port()
            self.spawn([self.exe, AEDES_JS, str(self.port), self.ws_dir])
            try:
                self.wait_ready(self._ready, timeout)
            except RuntimeError:
                self.stop()
                raise
            return self
        elif self.kind == 'nats':
            # MQTT in nats-server needs JetStream (sessions, QoS 1, retained)
            # and a server name; the NATS client port is any free one.
            self.port = petreltest.free_port()
            lines = ['server_name: petrel_compare', 'listen: "127.0.0.1:-1"',
                     'jetstream { store_dir: "%s" }' % data,
                     'mqtt { listen: "127.0.0.1:%d", max_ack_pending: %d }'
                     % (self.port, MAX_INFLIGHT)]
        else:
            self.port = petreltest.free_port()
            lines = ['listener %d 127.0.0.1' % self.port, 'allow_anonymous true',
                     'log_dest stderr', 'log_type error', 'log_type warning', 'log_type notice',
                     'max_queued_messages %d' % (self.petrel_conf
                                                 if isinstance(self.petrel_conf, int)
                                                 else MAX_QUEUED),
                     'max_inflight_messages %d' % MAX_INFLIGHT,
                     # petreld sets TCP_NODELAY on every connection
                     'set_tcp_nodelay true',
                     'persistence %s' % ('true' if self.persistent else 'false'),
                     'persistence_location %s/' % data]
            lines += petreltest.mosquitto_root_lines()
        with open(conf, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        self.spawn([self.exe, '-c', conf])
        try:
            self.wait_ready(self._ready, timeout)
        except RuntimeError:
            text = self.run_log_text()
            if (self.kind != 'petreld' and self.proc.poll() is not None
                    and 'address already in use' in text.lower()):
                # Another program took the free port meanwhile.
                shutil.rmtree(data, ignore_errors=True)
                return self.start(timeout)
            self.stop()
            raise
        return self

    def _ready(self, text):
        if self.kind == 'petreld':
            ready = self.petreld_ready(text)
            if ready and self.ws:
                self.port = ready[-1][1]  # the ws listener, listed last
            return ready
        if self.kind == 'aedes':
            return 'aedes ws listening' in text and self.accepting()
        if self.kind == 'nats':
            return 'Server is ready' in text and self.accepting()
        # (with log_type notice, as petreld's log_level, mosquitto does not
        # log that it is running)
        return self.accepting()

    def accepting(self):
        return petreltest.port_open(self.port)

    def stop(self):
        self.terminate(60)
        self.remove()


def dirty_kib():
    """Dirty + Writeback from /proc/meminfo, in KiB (0 where it is not
    readable)."""
    try:
        with open('/proc/meminfo') as f:
            m = dict(line.split(':', 1) for line in f)
        return sum(int(m[k].split()[0]) for k in ('Dirty', 'Writeback') if k in m)
    except (OSError, ValueError):
        return 0


def settle(limit_kib=16384, timeout=30.0):
    """Before every run: the page cache the previous run (any broker's)
    left dirty is written out now, so that its writeback does not land in
    the middle of the next run's latency figures.  Every broker gets the
    same treatment; the wait is bounded."""
    os.sync()
    deadline = time.monotonic() + timeout
    while dirty_kib() > limit_kib and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)


class Compare:
    def __init__(self, a):
        self.a = a
        self.results = []
        self.ws_results = []
        self.failures = []
        self.seq = 0

    def bench(self, broker, args, label, transport='tcp'):
        """Runs petrel bench with --json against `broker` (over ws:// with
        transport 'ws'); returns the parsed result (exit_status inside).  A
        run that could not produce JSON raises."""
        where = (['-L', 'ws://127.0.0.1:%d/mqtt' % broker.port] if transport == 'ws'
                 else ['-h', '127.0.0.1', '-p', str(broker.port)])
        cmd = [self.a.petrel, 'bench'] + where + [
            '--json', '--no-progress', '--broker-pid', str(broker.proc.pid)] + [
                str(x) for x in args]
        if self.a.verbose:
            print('    $ ' + ' '.join(cmd[1:]), flush=True)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        try:
            out = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError('%s: petrel bench exited %d without a result:\n%s\n%s'
                               % (label, p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
        if p.returncode != 0:
            why = []
            lost, unacked = out['received']['lost'], out['published']['unacked']
            if out['config']['qos'] or out['config']['sub_qos']:
                acked_lost = out['received'].get('acked_lost', 0)
                if acked_lost:
                    why.append('%d acknowledged but never delivered' % acked_lost)
                if lost > acked_lost:
                    why.append('%d messages lost' % (lost - acked_lost))
                if unacked:
                    why.append('%d unacknowledged' % unacked)
            if out['connections']['failed'] or out['connections']['lost']:
                why.append('%d connections failed, %d lost' % (out['connections']['failed'],
                                                               out['connections']['lost']))
            if out.get('stalled'):
                why.append('ended after %g s without progress' % out['config'].get(
                    'drain_timeout', 10))
            if not why and p.stderr.strip():
                why.append(p.stderr.strip().splitlines()[-1])
            self.failures.append('%s on %s: petrel bench exit %d: %s'
                                 % (label, broker.kind, p.returncode,
                                    '; '.join(why) or 'see its report'))
        return out

    def one_run(self, b, measure, sid, col, rnd, optional, na, runs, width):
        """Starts broker b, measures it (measure(b)), stops it; the result
        goes to runs[col] and is printed.  An optional peer that fails is
        reported and marked n/a in na[col], and the comparison goes on;
        any other failure raises."""
        settle()
        try:
            b.start()
            t0 = time.monotonic()
            r = measure(b)
        except RuntimeError as e:
            if not optional:
                raise
            na[col] = 'failed: %s' % str(e).splitlines()[0][:120]
            self.failures.append('%s on %s: %s' % (sid, b.kind, e))
            return
        finally:
            b.stop()
        runs[col].append(r)
        print('  round %d %-*s %s  (%.1f s)'
              % (rnd + 1, width, col, '  '.join('%s=%s' % (k, fmt(v)) for k, v in r.items()),
                 time.monotonic() - t0), flush=True)

    def uid(self, tag):
        self.seq += 1
        return 'cmp-%s-%d-%d' % (tag, os.getpid(), self.seq)

    # ---- scenarios: each returns {metric: value} plus 'lost' (QoS 1: lost
    # or left unacknowledged) and 'acked_lost' (acknowledged to the
    # publisher, never delivered) ---------------------------------------------

    @staticmethod
    def losses(r):
        return {'lost': r['received']['lost'] + r['published']['unacked'],
                'acked_lost': r['received'].get('acked_lost', 0)}

    def s1(self, b, q):
        r = self.bench(b, ['--pubs', 1, '--subs', 1, '-q', 0, '-s', 64, '-D', q['dur'],
                           '-t', 's1/x', '-T', 's1/x'], 'S1')
        return {'msgs_per_sec': r['received']['msgs_per_sec'], 'lost': r['received']['lost'],
                'p99_ms': r['latency_us']['p99'] / 1e3}

    def open_loop(self, b, q, label, args):
        """The flow-control scenarios: QoS 1, 64 B, a publisher window of
        1000, open loop; after publishing, what is missing is waited for
        until nothing has arrived for drain seconds."""
        r = self.bench(b, ['-q', 1, '-s', 64, '-w', 1000, '-D', q['ol_dur'],
                           '--drain-timeout', q['drain']] + args, label)
        out = {'msgs_per_sec': r['received']['msgs_per_sec'],
               'p50_ms': r['latency_us']['p50'] / 1e3, 'p99_ms': r['latency_us']['p99'] / 1e3,
               'max_ms': r['latency_us']['max'] / 1e3,
               'sent_per_sec': r['schedule']['sent_per_sec'],
               'acked_per_sec': r['schedule']['acked_per_sec']}
        out.update(self.losses(r))
        return out

    def s2(self, b, q):
        return self.open_loop(b, q, 'S2', ['--pubs', 1, '--subs', 1, '--persistent',
                                           '--backlog', 0, '-i', self.uid('s2'),
                                           '-t', 's2/x', '-T', 's2/x'])

    def s2cl(self, b, q):
        r = self.bench(b, ['--pubs', 1, '--subs', 1, '-q', 1, '-s', 64, '-D', q['dur'], '-c',
                           '-i', self.uid('s2cl'), '-t', 's2/x', '-T', 's2/x'], 'S2cl')
        out = {'msgs_per_sec': r['received']['msgs_per_sec'],
               'p99_ms': r['latency_us']['p99'] / 1e3}
        out.update(self.losses(r))
        return out

    def s2r(self, b, q):
        return self.open_loop(b, q, 'S2r', ['--pubs', 1, '--subs', 1, '--persistent',
                                            '-r', q['s2r_rate'], '-i', self.uid('s2r'),
                                            '-t', 's2r/x', '-T', 's2r/x'])

    def s2c(self, b, q):
        return self.open_loop(b, q, 'S2c', ['--pubs', 1, '--subs', 1, '--backlog', 0,
                                            '-t', 's2c/x', '-T', 's2c/x'])

    def s3(self, b, q):
        r = self.bench(b, ['--pubs', 1, '--subs', q['fan'], '-q', 0, '-s', 64, '-D', q['dur'],
                           '-t', 's3/x', '-T', 's3/x'], 'S3')
        return {'deliveries_per_sec': r['received']['msgs_per_sec'],
                'lost': r['received']['lost'], 'p99_ms': r['latency_us']['p99'] / 1e3}

    def s4(self, b, q):
        r = self.bench(b, ['--pubs', q['fan'], '--subs', 1, '-q', 1, '-s', 64, '-D', q['dur'],
                           '-t', 's4/%p', '-T', 's4/+'], 'S4')
        out = {'msgs_per_sec': r['received']['msgs_per_sec'],
               'p99_ms': r['latency_us']['p99'] / 1e3}
        out.update(self.losses(r))
        return out

    def s4r(self, b, q):
        return self.open_loop(b, q, 'S4r', ['--pubs', q['s4r_pubs'], '--subs', 1,
                                            '--persistent', '-r', q['s4r_rate'],
                                            '-i', self.uid('s4r'),
                                            '-t', 's4r/%p', '-T', 's4r/+'])

    def s5(self, b, q):
        r = self.bench(b, ['--pubs', q['p2p'], '--subs', q['p2p'], '-q', 1, '-s', 64,
                           '--rate-per-pub', q['p2p_rate'], '-D', q['p2p_dur'],
                           '-t', 's5/%p', '-T', 's5/%s'], 'S5')
        out = {'p50_ms': r['latency_us']['p50'] / 1e3, 'p99_ms': r['latency_us']['p99'] / 1e3}
        out.update(self.losses(r))
        return out

    def s6(self, b, q):
        r = self.bench(b, ['--connect-only', '--clients', q['conns'], '-k', 60, '-D', 2,
                           '--timeout', 60], 'S6')
        return {'connect_all_s': r['connections']['seconds'],
                'connects_per_sec': r['connections']['per_sec'],
                'rss_per_conn_bytes': r['broker_rss']['bytes_per_connection'],
                'lost': r['connections']['total'] - r['connections']['connected']}

    def s7(self, b, q):
        sid = self.uid('s7')
        n = q['queue']
        # The session and its subscription, then the queue while it is away.
        self.bench(b, ['--pubs', 0, '--subs', 1, '-c', '-i', sid, '-q', 1, '-n', 0,
                       '-T', 's7/#'], 'S7 session')
        pub = self.bench(b, ['--pubs', 1, '--subs', 0, '-q', 1, '-n', n, '-t', 's7/x',
                             '-i', sid + '-load'], 'S7 queue')
        drain = self.bench(b, ['--pubs', 0, '--subs', 1, '-c', '-i', sid, '-q', 1, '-n', n,
                               '-T', 's7/#', '--timeout', 30], 'S7 drain')
        # The drain cannot tell acknowledged messages from the others: all
        # but those the queueing run left unacknowledged were acknowledged.
        unacked = pub['published']['unacked']
        lost = drain['received']['lost'] + unacked
        return {'drain_msgs_per_sec': drain['received']['msgs_per_sec'],
                'queue_msgs_per_sec': pub['published']['msgs_per_sec'],
                'lost': lost, 'acked_lost': max(0, drain['received']['lost'] - unacked)}

    def s8(self, b, q):
        # Longer than the other open-loop runs: the first second fills the
        # queue (2000) and the publisher's window (1000) at the offered rate,
        # which is buffering, not the pace the broker holds it to.
        r = self.open_loop(b, dict(q, ol_dur=q['s8_dur']), 'S8',
                           ['--pubs', 1, '--subs', 1, '--persistent',
                            '-r', q['s8_rate'], '--sub-rate', q['s8_sub_rate'],
                            '-i', self.uid('s8'), '-t', 's8/x', '-T', 's8/x'])
        # How far the broker held the publisher to the subscriber's pace
        # (1.0 = exactly; offered / sub rate = not at all).
        r['held_x'] = r['acked_per_sec'] / q['s8_sub_rate']
        return r

    # id, method, title, headline metric, higher is better, target, unit,
    # mosquitto persistence, QoS 1 (zero acknowledged loss required),
    # petreld settings ('same' as the peers, or its 'defaults').
    # target: ('ratio', x): Petrel / Mosquitto >= x (or <= x when lower is
    # better); ('abs', x): Petrel's own figure <= x (or >= x).
    SCENARIOS = [
        ('S1', s1, 'throughput: 1 pub -> 1 sub, QoS 0, 64 B, max rate', 'msgs_per_sec', True,
         ('ratio', 1.5), 'msg/s', False, False, 'same'),
        ('S2', s2, 'durable max rate: 1 pub -> 1 persistent sub, QoS 1, open loop, window 1000',
         'msgs_per_sec', True, ('ratio', 1.5), 'msg/s', True, True, 'defaults'),
        ('S2cl', s2cl, 'durable, closed loop: 1 pub -> 1 persistent sub, QoS 1, 64 B',
         'msgs_per_sec', True, ('ratio', 1.0), 'msg/s', True, True, 'same'),
        ('S2r', s2r, 'durable latency: 1 pub -> 1 persistent sub, QoS 1, {s2r_rate} msg/s',
         'p99_ms', False, ('abs', 1.0), 'ms', True, True, 'defaults'),
        ('S2c', s2c, 'clean session: 1 pub -> 1 sub, QoS 1, open loop, window 1000',
         'msgs_per_sec', True, ('ratio', 2.0), 'msg/s', False, True, 'defaults'),
        ('S3', s3, 'fan-out: 1 pub -> {fan} subs on one topic, QoS 0', 'deliveries_per_sec',
         True, ('ratio', 1.5), 'deliveries/s', False, False, 'same'),
        ('S4', s4, 'fan-in: {fan} pubs (a topic each) -> 1 wildcard sub, QoS 1', 'msgs_per_sec',
         True, ('ratio', 1.2), 'msg/s', False, True, 'same'),
        ('S4r', s4r, 'fan-in latency: {s4r_pubs} pubs -> 1 persistent sub, QoS 1, '
         '{s4r_rate} msg/s in all', 'p99_ms', False, ('abs', 2.0), 'ms', True, True, 'defaults'),
        ('S5', s5, 'latency: {p2p} pubs -> {p2p} subs point to point, {p2p_rate} msg/s each, QoS 1',
         'p99_ms', False, ('ratio', 1.0), 'ms', False, True, 'same'),
        ('S6', s6, 'connections: {conns} idle clients, keep alive 60', 'rss_per_conn_bytes', False,
         ('ratio', 1.0), 'B/conn', False, False, 'same'),
        ('S7', s7, 'offline queue: {queue} QoS 1 msgs queued, then drained', 'drain_msgs_per_sec',
         True, ('ratio', 1.0), 'msg/s', True, True, 'same'),
        ('S8', s8, 'slow subscriber: {s8_rate} msg/s offered for {s8_dur} s, persistent sub reads '
         '{s8_sub_rate} msg/s, queues of 2000; publisher acked rate / sub rate', 'held_x', False, ('abs', 1.5),
         'x', True, True, 2000),
        ('B1', compare_bridge.b1, 'bridge forward rate: 1 pub -> local broker -> bridge -> remote '
         'Mosquitto -> 1 persistent sub, QoS 1, open loop, window 1000', 'msgs_per_sec', True,
         ('ratio', 1.0), 'msg/s', True, True, 'same'),
        ('B1r', compare_bridge.b1r, 'bridge latency: the same at %d msg/s, end to end'
         % compare_bridge.B1R_RATE, 'p99_ms', False, ('ratio', 1.0), 'ms', True, True, 'same'),
        ('B2', compare_bridge.b2, 'bridge kill -9: local broker killed while forwarding QoS 1, '
         'restarted; acknowledged messages the remote subscriber never got', 'acked_lost', False,
         ('abs', 0), 'msgs', True, True, 'same'),
    ]
    # ---- the WebSocket scenarios: petreld over TCP and over ws, Aedes over
    # ws; each gets (broker, transport, params) ------------------------------

    def sws0(self, b, t, q):
        r = self.bench(b, ['--pubs', 1, '--subs', 1, '-q', 0, '-s', 64, '-D', q['dur'],
                           '-t', 'sws/x', '-T', 'sws/x'], 'Sws0', t)
        return {'msgs_per_sec': r['received']['msgs_per_sec'], 'lost': r['received']['lost'],
                'p50_ms': r['latency_us']['p50'] / 1e3, 'p99_ms': r['latency_us']['p99'] / 1e3}

    def sws1(self, b, t, q):
        r = self.bench(b, ['--pubs', 1, '--subs', 1, '-q', 1, '-s', 64, '-D', q['dur'],
                           '-t', 'sws/x', '-T', 'sws/x'], 'Sws1', t)
        out = {'msgs_per_sec': r['received']['msgs_per_sec'],
               'p50_ms': r['latency_us']['p50'] / 1e3, 'p99_ms': r['latency_us']['p99'] / 1e3}
        out.update(self.losses(r))
        return out

    def swsi(self, b, t, q):
        # Warm up first, as ws_idle.py does: what the first connections make
        # once (petreld: OpenSSL's SHA-1 for the handshake, 2 MB; Node: its
        # JIT) is not what a connection costs.
        self.bench(b, ['--connect-only', '--clients', 50, '--timeout', 60], 'Swsi warm-up', t)
        r = self.bench(b, ['--connect-only', '--clients', q['ws_conns'], '-k', 60, '-D', 2,
                           '--timeout', 60], 'Swsi', t)
        return {'rss_per_conn_bytes': r['broker_rss']['bytes_per_connection'],
                'connect_all_s': r['connections']['seconds'],
                'lost': r['connections']['total'] - r['connections']['connected']}

    # id, method, title, metric, higher is better, target for Petrel ws /
    # Petrel TCP (>= x, or <= x when lower is better), unit, QoS 1.
    WS_SCENARIOS = [
        ('Sws0', sws0, 'WebSocket p2p: 1 pub -> 1 sub, QoS 0, 64 B, max rate', 'msgs_per_sec',
         True, 0.7, 'msg/s', False),
        ('Sws1', sws1, 'WebSocket p2p: 1 pub -> 1 sub, QoS 1, 64 B, closed loop',
         'msgs_per_sec', True, 0.7, 'msg/s', True),
        ('Swsi', swsi, 'idle WebSocket connections: {ws_conns} clients, keep alive 60',
         'rss_per_conn_bytes', False, 2.0, 'B/conn', False),
    ]

    def run_ws(self, q, only):
        na = {}
        if not os.path.isdir(os.path.join(self.a.aedes_dir, 'aedes')):
            na['aedes_ws'] = 'Aedes not installed (tests/bench/install-aedes.sh)'
        elif not os.path.exists(NODE):
            na['aedes_ws'] = 'node not installed'
        for sid, fn, title, metric, higher, target, unit, qos1 in self.WS_SCENARIOS:
            if only and sid not in only and 'Sws' not in only:
                continue
            title = title.format(**q)
            print('%s %s' % (sid, title), flush=True)
            runs = {col: [] for col, _, _ in WS_PEERS}
            for rnd in range(self.a.rounds):
                for col, kind, transport in WS_PEERS:
                    if col in na:
                        continue
                    if kind == 'petreld':
                        b = Broker(kind, self.a.petreld, False, 'same', self.a.petreld_set,
                                   ws=transport == 'ws')
                    else:
                        b = Broker(kind, NODE, False)
                        b.ws_dir = self.a.aedes_dir
                    self.one_run(b, lambda b: fn(self, b, transport, q), sid, col, rnd,
                                 kind == 'aedes', na, runs, 11)
            res = {'id': sid, 'title': title, 'metric': metric, 'unit': unit,
                   'higher_is_better': higher, 'target': target, 'qos1': qos1, 'runs': runs,
                   'na': dict(na)}
            for col, _, _ in WS_PEERS:
                if col in na or not runs[col]:
                    res[col] = None
                    continue
                res[col] = {k: statistics.median(r[k] for r in runs[col]) for k in runs[col][0]}
                res[col]['lost_total'] = sum(r['lost'] for r in runs[col])
                res[col]['acked_lost_total'] = sum(r.get('acked_lost', 0) for r in runs[col])
            ws, tcp, aedes = (res[c][metric] if res[c] else None
                              for c in ('petreld_ws', 'petreld_tcp', 'aedes_ws'))
            res['ratio_ws_tcp'] = ws / tcp if ws is not None and tcp else None
            res['ratio_ws_aedes'] = ws / aedes if ws is not None and aedes else None
            r = res['ratio_ws_tcp']
            res['met'] = None if r is None else (r >= target if higher else r <= target)
            if qos1 and res['petreld_ws'] and res['petreld_ws']['acked_lost_total']:
                res['met'] = False
            self.ws_results.append(res)
            print('  median: %s; Petrel ws/TCP %s (target %s %.1fx), Petrel ws/Aedes ws %s%s'
                  % (', '.join('%s %s' % (c, fmt(res[c][metric]) if res[c] else 'n/a')
                               for c, _, _ in WS_PEERS),
                     fmt_ratio(r), '>=' if higher else '<=', target,
                     fmt_ratio(res['ratio_ws_aedes']), '' if res['met'] else '  NOT MET'),
                  flush=True)

    # Why a peer cannot run a scenario (shown as n/a).  nats-server's MQTT
    # has no QoS 2; none of these scenarios needs it.
    NOT_SUPPORTED = {}
    NOT_SUPPORTED.update(compare_bridge.NOT_SUPPORTED)

    def params(self):
        if self.a.quick:
            return {'dur': 1, 'fan': 50, 'p2p': 50, 'p2p_rate': 5, 'p2p_dur': 2, 'conns': 500,
                    'ws_conns': 300,
                    'queue': 2000, 'ol_dur': 1, 'drain': 2, 's2r_rate': 20000,
                    's4r_pubs': 100, 's4r_rate': 30000, 's8_rate': 20000, 's8_sub_rate': 2000,
                    's8_dur': 4}
        return {'dur': 10, 'fan': 1000, 'p2p': 1000, 'p2p_rate': 1, 'p2p_dur': 15,
                'conns': 10000, 'ws_conns': 10000, 'queue': 100000, 'ol_dur': 4, 'drain': 3, 's2r_rate': 20000,
                's4r_pubs': 100, 's4r_rate': 30000, 's8_rate': 20000, 's8_sub_rate': 2000,
                's8_dur': 10}

    def peers(self):
        out = [('petreld', self.a.petreld), ('mosquitto', MOSQUITTO)]
        if self.a.nats:
            out.append(('nats', NATS))
        return out

    def run(self):
        q = self.params()
        only = set(self.a.only.split(',')) if self.a.only else None
        t_start = time.monotonic()
        self.load_start = list(os.getloadavg())
        for (sid, fn, title, metric, higher, target, unit, persist, qos1,
             pconf) in self.SCENARIOS:
            if only and sid not in only:
                continue
            title = title.format(**q)
            print('%s %s' % (sid, title), flush=True)
            runs = {k: [] for k in PEERS}
            na = {}
            if not self.a.nats:
                na['nats'] = self.a.nats_why
            na.update(self.NOT_SUPPORTED.get(sid, {}))
            for rnd in range(self.a.rounds):
                for kind, exe in self.peers():
                    if kind in na:
                        continue
                    b = Broker(kind, exe, persist, pconf, self.a.petreld_set)
                    self.one_run(b, lambda b: fn(self, b, q), sid, kind, rnd, kind == 'nats', na,
                                 runs, 9)
            res = {'id': sid, 'title': title, 'metric': metric, 'unit': unit,
                   'higher_is_better': higher, 'target': list(target), 'qos1': qos1,
                   'petreld_settings': pconf, 'runs': runs, 'na': na}
            for kind in PEERS:
                if kind in na or not runs[kind]:
                    res[kind] = None
                    continue
                res[kind] = {k: statistics.median(r[k] for r in runs[kind])
                             for k in runs[kind][0]}
                res[kind]['lost_total'] = sum(r['lost'] for r in runs[kind])
                res[kind]['acked_lost_total'] = sum(r.get('acked_lost', 0) for r in runs[kind])
            p = res['petreld'][metric]
            for kind, key in (('mosquitto', 'ratio'), ('nats', 'ratio_nats')):
                other = res[kind][metric] if res[kind] else None
                res[key] = p / other if other else None
            kind_t, x = target
            if kind_t == 'abs':
                res['met'] = p >= x if higher else p <= x
            elif res['ratio'] is None:
                res['met'] = None
            else:
                res['met'] = res['ratio'] >= x if higher else res['ratio'] <= x
            if qos1 and (res['petreld']['lost_total'] or res['petreld']['acked_lost_total']):
                res['met'] = False
            self.results.append(res)
            print('  median: %s; %s (target %s)%s'
                  % (', '.join('%s %s' % (k, fmt(res[k][metric]) if res[k] else 'n/a')
                               for k in PEERS),
                     ', '.join('%s %s' % (lbl, fmt_ratio(res[key])) for lbl, key in
                               (('Petrel/Mosquitto', 'ratio'), ('Petrel/NATS', 'ratio_nats'))),
                     target_text(target, higher, unit),
                     '' if res['met'] else '  NOT MET'), flush=True)
        self.run_ws(q, only)
        self.elapsed = time.monotonic() - t_start


def fmt(v):
    if isinstance(v, float):
        if abs(v) >= 100:
            return '%.0f' % v
        if abs(v) >= 1:
            return '%.2f' % v
        return '%.3f' % v
    return str(v)


def fmt_ratio(r):
    return 'n/a' if r is None else '%.2fx' % r


def fmt_thousands(v, unit):
    if unit in ('ms',):
        return '%.2f %s' % (v, unit)
    if unit == 'B/conn':
        return '%.0f B' % v
    if unit == 'x':
        return '%.2fx' % v
    return '{:,.0f} {}'.format(v, unit)


def target_text(target, higher, unit):
    kind, x = target
    op = '>=' if higher else '<='
    if kind == 'abs':
        return '%s %s' % (op, fmt_thousands(x, unit))
    return '%s %.1fx Mosquitto' % (op, x)


def machine():
    cpu = platform.processor() or '?'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ''
    try:
        with open('/proc/meminfo') as f:
            kib = int(f.readline().split()[1])
            mem = '%.0f GiB' % (kib / 1024 / 1024)
    except (OSError, ValueError, IndexError):
        pass
    return {'cpu': cpu, 'cores': os.cpu_count(), 'kernel': platform.release(), 'memory': mem}


def versions(petreld, aedes_dir):
    out = {}
    try:
        out['mosquitto'] = re.search(r'mosquitto version (\S+)', subprocess.run(
            [MOSQUITTO, '-h'], capture_output=True, text=True).stdout).group(1)
    except (OSError, AttributeError):
        out['mosquitto'] = '?'
    try:
        out['nats'] = re.search(r'v?(\d+\.\d+\.\d+)', subprocess.run(
            [NATS, '--version'], capture_output=True, text=True).stdout).group(1)
    except (OSError, AttributeError):
        out['nats'] = '?'
    try:
        out['petreld'] = subprocess.run([petreld, '--version'], capture_output=True,
                                        text=True).stdout.strip() or '?'
    except OSError:
        out['petreld'] = '?'
    for pkg in ('aedes', 'ws'):
        try:
            with open(os.path.join(aedes_dir, pkg, 'package.json')) as f:
                out[pkg] = json.load(f)['version']
        except (OSError, ValueError, KeyError):
            out[pkg] = '?'
    try:
        out['node'] = subprocess.run([NODE, '--version'], capture_output=True,
                                     text=True).stdout.strip().lstrip('v') or '?'
    except OSError:
        out['node'] = '?'
    return out


def cell(r, kind):
    """A table cell: the median, and for QoS 1 the messages acknowledged but
    never delivered, summed over the rounds."""
    if r[kind] is None:
        return 'n/a (%s)' % r['na'].get(kind, 'no run')
    text = fmt_thousands(r[kind][r['metric']], r['unit'])
    if r['qos1']:
        text += ', %d lost' % r[kind]['acked_lost_total']
    return text


def scenario_table(figures, scenarios, cells):
    """The lines of a table of scenarios: id, title, the figures' columns
    (right-aligned) and the target that cells(r) gives, and whether the
    target is met."""
    lines = ['| | scenario | %s | target | met |' % ' | '.join(figures),
             '|---|---|' + '---:|' * len(figures) + '---|---|']
    for r in scenarios:
        met = {True: 'yes', False: '**no**', None: '?'}[r['met']]
        row = [r['id'], r['title']] + cells(r) + [met]
        lines.append('| %s |' % ' | '.join(row))
    return lines


def markdown(doc):
    m = doc['machine']
    v = doc['versions']
    lines = [
        'Measured %s on %s (%d cores, %s RAM), Linux %s; %s (source %s), Mosquitto %s, '
        'nats-server %s; %d round%s per scenario, medians shown; whole run %.0f s; '
        'load average before %.2f.'
        % (doc['date'], m['cpu'], m['cores'], m['memory'], m['kernel'],
           v['petreld'], doc['source'], v['mosquitto'], v.get('nats', '?'), doc['rounds'],
           '' if doc['rounds'] == 1 else 's', doc['elapsed_seconds'], doc['loadavg_start'][0]),
        '',
    ]
    later = {}
    for r in doc['scenarios']:
        if r.get('run'):
            later.setdefault((r['run']['date'], r['run']['source'], r['run']['rounds'],
                              r['run']['loadavg_start'][0]), []).append(r['id'])
    for (date, source, rounds, load), ids in later.items():
        lines.append('%s measured on their own (`--only`) %s, source %s, %d round%s, load '
                     'average before %.2f; the rest in the run above.'
                     % (', '.join(ids), date, source, rounds, '' if rounds == 1 else 's', load))
    if later:
        lines.append('')
    lines += [
        '"lost" = QoS 1 messages acknowledged to the publisher but never delivered, all '
        'rounds together. A QoS 1 scenario is met only with 0 lost for Petrel.',
        '',
    ]
    lines += scenario_table(
        ['Petrel', 'Mosquitto', 'NATS', 'Petrel / Mosquitto', 'Petrel / NATS'], doc['scenarios'],
        lambda r: [cell(r, 'petreld'), cell(r, 'mosquitto'), cell(r, 'nats'),
                   fmt_ratio(r['ratio']), fmt_ratio(r.get('ratio_nats')),
                   target_text(r['target'], r['higher_is_better'], r['unit'])])
    lines += ['', 'Other figures (medians, Petrel / Mosquitto / NATS):', '']
    extra = {
        'S1': [('p99_ms', 'latency p99 at full load', 'ms')],
        'S2': [('p99_ms', 'latency p99', 'ms'),
               ('acked_per_sec', 'publisher acknowledged rate', 'msg/s')],
        'S2cl': [('p99_ms', 'latency p99 at full load', 'ms')],
        'S2r': [('p50_ms', 'latency p50', 'ms'), ('max_ms', 'latency max', 'ms'),
                ('msgs_per_sec', 'delivered', 'msg/s')],
        'S2c': [('p99_ms', 'latency p99', 'ms'),
                ('acked_per_sec', 'publisher acknowledged rate', 'msg/s')],
        'S3': [('p99_ms', 'latency p99 at full load', 'ms')],
        'S4': [('p99_ms', 'latency p99 at full load', 'ms')],
        'S4r': [('p50_ms', 'latency p50', 'ms'), ('max_ms', 'latency max', 'ms'),
                ('msgs_per_sec', 'delivered', 'msg/s')],
        'S5': [('p50_ms', 'latency p50', 'ms')],
        'S6': [('connect_all_s', 'time to connect all', 's'),
               ('connects_per_sec', 'connect rate', 'conn/s')],
        'S7': [('queue_msgs_per_sec', 'queueing rate (publisher, QoS 1)', 'msg/s')],
        'S8': [('acked_per_sec', 'publisher acknowledged rate while publishing', 'msg/s'),
               ('msgs_per_sec', 'delivered (with the drain)', 'msg/s')],
    }
    extra.update(compare_bridge.EXTRA)

    def one(r, kind, key, unit):
        if r[kind] is None:
            return 'n/a'
        v = r[kind][key]
        return '%.2f s' % v if unit == 's' else fmt_thousands(v, unit)

    for r in doc['scenarios']:
        for key, label, unit in extra.get(r['id'], []):
            lines.append('- %s %s: %s' % (r['id'], label, ' / '.join(
                one(r, k, key, unit) for k in PEERS)))
    lost = ['%s %s' % (r['id'], ' / '.join(
        'n/a' if r[k] is None else '%d (%d)' % (r[k]['lost_total'], r[k]['acked_lost_total'])
        for k in PEERS)) for r in doc['scenarios'] if r['qos1']]
    if lost:
        lines.append('- QoS 1 messages lost or left unacknowledged (in brackets: of them '
                     'acknowledged), all rounds, Petrel / Mosquitto / NATS: ' + '; '.join(lost))
    if doc['failures']:
        lines += ['', 'Runs that did not complete cleanly:', '']
        lines += ['- ' + f.splitlines()[0] for f in doc['failures']]
    return '\n'.join(lines) + '\n'


def ws_markdown(doc):
    """The WebSocket table: Petrel over ws beside its own TCP figures of
    the same run, and beside Aedes over ws."""
    run = doc['ws_run']
    m = run['machine']
    lines = [
        'Measured %s on %s (%d cores), Linux %s; %s (source %s); Aedes %s with ws %s on '
        'Node.js %s; %d round%s per scenario, medians shown; %.0f s; load average before %.2f.'
        % (run['date'], m['cpu'], m['cores'], m['kernel'], run['versions'].get('petreld', '?'),
           run['source'], run['versions'].get('aedes', '?'), run['versions'].get('ws', '?'),
           run['versions'].get('node', '?'), run['rounds'], '' if run['rounds'] == 1 else 's',
           run['elapsed_seconds'], run['loadavg_start'][0]), '',
    ]
    lines += scenario_table(
        ['Petrel TCP', 'Petrel ws', 'Aedes ws', 'Petrel ws / TCP', 'Petrel ws / Aedes ws'],
        doc['ws_scenarios'],
        lambda r: [cell(r, 'petreld_tcp'), cell(r, 'petreld_ws'), cell(r, 'aedes_ws'),
                   fmt_ratio(r['ratio_ws_tcp']), fmt_ratio(r['ratio_ws_aedes']),
                   '%s %.1fx TCP' % ('>=' if r['higher_is_better'] else '<=', r['target'])])
    lines += ['', 'WebSocket latency and connect figures (medians, Petrel TCP / Petrel ws / '
              'Aedes ws):', '']
    extra = {'Sws0': [('p50_ms', 'latency p50 at full load', 'ms'),
                      ('p99_ms', 'latency p99 at full load', 'ms')],
             'Sws1': [('p50_ms', 'latency p50', 'ms'), ('p99_ms', 'latency p99', 'ms')],
             'Swsi': [('connect_all_s', 'time to connect all', 's')]}
    for r in doc['ws_scenarios']:
        for key, label, unit in extra.get(r['id'], []):
            vals = []
            for col, _, _ in WS_PEERS:
                if r[col] is None:
                    vals.append('n/a')
                else:
                    v = r[col][key]
                    vals.append('%.2f s' % v if unit == 's' else fmt_thousands(v, unit))
            lines.append('- %s %s: %s' % (r['id'], label, ' / '.join(vals)))
    failed = [f for f in doc.get('failures', []) if f.startswith('Sws')]
    if failed:
        lines += ['', 'Runs that did not complete cleanly:', '']
        lines += ['- ' + f.splitlines()[0] for f in failed]
    return '\n'.join(lines) + '\n'


def merge_by_id(old, new):
    """Scenario results of an --only run replace those of the same ids."""
    ids = [r['id'] for r in new]
    return [r for r in old if r['id'] not in ids] + new


def write_markdown(path, table, begin=MD_BEGIN, end=MD_END):
    """Replaces the results block of `path`, keeping the prose around it."""
    text = ''
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    block = begin + '\n' + table + end
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        text = head + block + tail
    else:
        text = (text or '# Benchmarks\n\n') + '\n' + block + '\n'
    with open(path, 'w') as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--petreld', required=True)
    ap.add_argument('--petrel', required=True)
    ap.add_argument('--quick', action='store_true', help='small N, 1 round: a smoke test')
    ap.add_argument('--rounds', type=int)
    ap.add_argument('--only', help='comma-separated scenario ids, e.g. S1,S3')
    ap.add_argument('--json', help='write the results here')
    ap.add_argument('--md', help='update the results table in this Markdown file')
    ap.add_argument('-v', '--verbose', action='store_true', help='show each bench command')
    ap.add_argument('--no-nats', dest='nats', action='store_false',
                    help='leave out the NATS peer')
    ap.add_argument('--aedes-dir', default='',
                    help='node_modules with aedes and ws (tests/bench/install-aedes.sh)')
    ap.add_argument('--petreld-set', action='append', default=[], metavar='KEY=VALUE',
                    help='one more petreld.conf setting for every Petrel run (repeatable)')
    a = ap.parse_args()
    try:
        a.petreld_set = [tuple(x.strip() for x in kv.split('=', 1)) for kv in a.petreld_set]
        if any(len(kv) != 2 or not kv[0] for kv in a.petreld_set):
            raise ValueError
    except ValueError:
        ap.error('--petreld-set takes KEY=VALUE')
    a.nats_why = 'left out (--no-nats)'
    if a.nats and not os.path.exists(NATS):
        a.nats, a.nats_why = False, 'nats-server not installed'
    a.petreld, a.petrel = os.path.abspath(a.petreld), os.path.abspath(a.petrel)
    if a.rounds is None:
        a.rounds = 1 if a.quick else 3
    if not os.path.exists(MOSQUITTO):
        sys.exit('compare: mosquitto not found (compare.sh installs it)')

    c = Compare(a)
    try:
        c.run()
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print('compare: %s' % e, file=sys.stderr)
        return 1
    now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    doc = {
        'date': now,
        'machine': machine(),
        'versions': versions(a.petreld, a.aedes_dir),
        'source': os.environ.get('PETREL_SOURCE_REV', '?'),
        'quick': a.quick,
        'rounds': a.rounds,
        'settings': {'max_queued_messages': MAX_QUEUED, 'max_inflight': MAX_INFLIGHT,
                     'petreld_max_queued_bytes': 0, 'petreld_set': dict(a.petreld_set),
                     'params': c.params()},
        'elapsed_seconds': round(c.elapsed, 1),
        # Other programs competing for the CPU would skew the figures.
        'loadavg_start': c.load_start,
        'loadavg_end': list(os.getloadavg()),
        'scenarios': c.results,
        'ws_scenarios': c.ws_results,
        'failures': c.failures,
    }
    if c.ws_results:
        doc['ws_run'] = {k: doc[k] for k in ('date', 'machine', 'versions', 'source', 'quick',
                                             'rounds', 'elapsed_seconds', 'loadavg_start',
                                             'loadavg_end')}
    if a.only and a.json and os.path.exists(a.json):
        # Only one of the two tables ran: the other keeps its last results
        # (as its Markdown block does).
        with open(a.json) as f:
            old = json.load(f)
        if not c.results:
            old['ws_scenarios'] = merge_by_id(old.get('ws_scenarios', []), c.ws_results)
            old['ws_run'] = doc['ws_run']
            old['failures'] = old.get('failures', []) + c.failures
            doc = old
        elif old.get('scenarios'):
            # Some scenarios of the main table ran: they replace their rows,
            # marked with their own run; the rest stay from the last run.
            run = {'date': doc['date'], 'source': doc['source'],
                   'rounds': doc['rounds'], 'loadavg_start': doc['loadavg_start']}
            for r in c.results:
                r['run'] = run
            ws = (doc['ws_scenarios'], doc.get('ws_run')) if c.ws_results else \
                (old.get('ws_scenarios', []), old.get('ws_run'))
            old['scenarios'] = merge_by_id(old['scenarios'], c.results)
            old['failures'] = [f for f in old.get('failures', [])
                               if f.split(' ', 1)[0] not in {r['id'] for r in c.results}] \
                + c.failures
            doc = old
            doc['ws_scenarios'] = ws[0]
            if ws[1]:
                doc['ws_run'] = ws[1]
    table = markdown(doc) if doc['scenarios'] else ''
    ws_table = ws_markdown(doc) if doc.get('ws_scenarios') else ''
    print()
    print(table + ('\n' if table and ws_table else '') + ws_table, end='')
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(doc, f, indent=1)
            f.write('\n')
    if a.md:
        if c.results:
            write_markdown(a.md, table)
        if c.ws_results:
            write_markdown(a.md, ws_table, MD_WS_BEGIN, MD_WS_END)
    # A benchmark reports; it fails only when it could not measure.
    return 0


if __name__ == '__main__':
    sys.exit(main())
