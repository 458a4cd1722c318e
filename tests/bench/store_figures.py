#!/usr/bin/python3
"""store_figures.py - the durable store's figures, measured with real
processes (run it through store_figures.sh, which builds what it needs).

1. QoS 1 publish rate: 1 publisher, 1 persistent subscriber online (clean
   session 0, QoS 1), 64-byte payloads, N messages; durability = process
   and = power; msgs/s at the publisher from the first PUBLISH sent to the
   last PUBACK received.  The same against mosquitto (persistence true).
2. Drain rate: M QoS 1 messages queued for an offline persistent session,
   then the time until it has received them all after reconnecting.
3. Start-up time and RSS with R queued messages in the database (built by
   queueing a few thousand through the broker, then multiplying the rows
   with SQL in petrel.db), and RSS while/after a subscriber drains part of
   that queue.

The clients are tests/bench/mqtt_bench (C, pipelined, 20 in flight):
mosquitto_pub -l turned out to be the bottleneck (about 9k msgs/s against
mosquitto, one write per message) and Python costs a core we need for the
broker on a 2-core machine.  Every port is chosen free on 127.0.0.1.
"""

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'lib'))
import petreltest  # noqa: E402  (needs the path above)
from petreltest import rss_kib  # noqa: E402

MOSQUITTO = shutil.which('mosquitto') or '/usr/sbin/mosquitto'


def parse_kv(line):
    return {k: (float(v) if re.fullmatch(r'[-0-9.]+', v) else v)
            for k, v in (x.split('=', 1) for x in line.split())}


class Broker(petreltest.BrokerProcess):
    """petreld or mosquitto on a free port with its own temporary directory."""

    error = RuntimeError
    poll = 0.002

    def __init__(self, kind, exe, tmp, settings=None):
        super().__init__(tmp=tmp)
        self.kind, self.exe = kind, exe
        self.settings = dict(settings or {})
        self.data_dir = os.path.join(tmp, 'data')
        os.makedirs(self.data_dir, exist_ok=True)

    def start(self, timeout=600):
        """Starts and waits for readiness; returns seconds from exec to ready."""
        conf = os.path.join(self.tmp, 'broker.conf')
        if self.kind == 'petreld':
            lines = ['listen = 127.0.0.1:0', 'data_dir = %s' % self.data_dir,
                     'log_level = notice']
            lines += ['%s = %s' % kv for kv in self.settings.items()]
        else:
            self.port = petreltest.free_port()
            lines = ['listener %d 127.0.0.1' % self.port, 'allow_anonymous true',
                     'persistence true', 'persistence_location %s/' % self.data_dir,
                     'log_dest stderr']
            lines += petreltest.mosquitto_root_lines()
            lines += ['%s %s' % kv for kv in self.settings.items()]
        with open(conf, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        t0 = time.monotonic()
        self.spawn([self.exe, '-c', conf])
        try:
            self.wait_ready(self._ready, timeout)
        except RuntimeError:
            self.kill()
            raise
        return time.monotonic() - t0

    def _ready(self, text):
        if self.kind == 'petreld':
            return self.petreld_ready(text)
        return re.search(r'mosquitto version \S+ running', text)

    def rss(self):
        return rss_kib(self.proc.pid)

    def stop(self, timeout=120):
        if not self.terminate(timeout):
            raise RuntimeError('%s did not stop within %ds' % (self.kind, timeout))


class Bench:
    def __init__(self, args):
        self.a = args
        self.results = {'settings': {}, 'figures': {}}
        self.tmps = []
        self.brokers = []

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix='petrel-bench-')
        self.tmps.append(d)
        return d

    def broker(self, kind, settings):
        exe = self.a.petreld if kind == 'petreld' else MOSQUITTO
        b = Broker(kind, exe, self.tmpdir(), settings)
        self.brokers.append(b)
        return b

    def client(self, *args, timeout=900):
        r = subprocess.run([self.a.bench] + [str(x) for x in args], capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError('mqtt_bench %s failed: %s' % (' '.join(map(str, args)),
                                                            r.stderr.strip()))
        return parse_kv(r.stdout.strip().splitlines()[-1])

    def client_bg(self, *args):
        return subprocess.Popen([self.a.bench] + [str(x) for x in args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def wait_bg(self, p, timeout=900):
        out, err = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError('mqtt_bench failed: %s' % err.strip())
        return parse_kv(out.strip().splitlines()[-1])

    def say(self, line):
        print(line, flush=True)

    def cleanup(self):
        for b in self.brokers:
            b.kill()
        for d in self.tmps:
            shutil.rmtree(d, ignore_errors=True)

    # ---------------------------------------------------------------- 1
    def publish_rate(self, kind, settings, label):
        n = self.a.n
        b = self.broker(kind, settings)
        b.start()
        try:
            self.client('sub', b.port, 'rate-sub', 'bench/rate', 0)     # the session
            sub = self.client_bg('sub', b.port, 'rate-sub', 'bench/rate', n)
            time.sleep(0.2)
            pub = self.client('pub', b.port, 'bench/rate', n, 64, 20)
            s = self.wait_bg(sub)
            rss = b.rss()
        finally:
            b.stop()
        e2e = s['t_end'] - pub['t_start']   # first PUBLISH sent -> last one received
        r = {'broker': kind, 'settings': settings, 'messages': n,
             'publisher_msgs_per_s': round(pub['rate']), 'publisher_seconds': pub['seconds'],
             'subscriber_received': int(s['got']), 'end_to_end_seconds': round(e2e, 4),
             'end_to_end_msgs_per_s': round(s['got'] / e2e), 'broker_rss_kib_after': rss}
        self.say('%-44s %8.0f msgs/s  (%d msgs acked in %.2f s; subscriber had all %d after '
                 '%.2f s)' % ('qos1 publish rate, ' + label, pub['rate'], n, pub['seconds'],
                              s['got'], e2e))
        return r

    # ---------------------------------------------------------------- 2
    def drain_rate(self, kind, settings, label):
        m = self.a.drain
        b = self.broker(kind, settings)
        b.start()
        try:
            self.client('sub', b.port, 'drain-sub', 'bench/drain', 0)
            pub = self.client('pub', b.port, 'bench/drain', m, 64, 20)
            s = self.client('sub', b.port, 'drain-sub', '-', m)
        finally:
            b.stop()
        r = {'broker': kind, 'settings': settings, 'messages': m,
             'queue_msgs_per_s': round(pub['rate']),
             'drain_seconds': s['seconds'], 'drain_msgs_per_s': round(s['rate']),
             'first_message_seconds': s['first_seconds'], 'received': int(s['got'])}
        self.say('%-44s %8.0f msgs/s  (%d queued at %.0f msgs/s, drained in %.2f s, first '
                 'after %.3f s)' % ('drain rate, ' + label, s['rate'], m, pub['rate'],
                                    s['seconds'], s['first_seconds']))
        return r

    # ---------------------------------------------------------------- 3
    def multiply_rows(self, db_path, client_id, total):
        """Adds messages and deliveries rows to petrel.db until client_id's
        session has `total` queued deliveries: copies of its newest message
        and delivery, with new message ids (refs 1) and new, increasing seq."""
        con = sqlite3.connect(db_path, isolation_level=None)
        try:
            con.execute('PRAGMA journal_mode=WAL')
            sid = con.execute('SELECT id FROM sessions WHERE client_id = ? OR client_id = ?',
                              (client_id.encode(), client_id)).fetchone()
            if not sid:
                raise RuntimeError('session %s not in %s' % (client_id, db_path))
            sid = sid[0]
            have = con.execute('SELECT count(*) FROM deliveries WHERE session_id = ?',
                               (sid,)).fetchone()[0]
            if have == 0:
                raise RuntimeError('no deliveries to copy')
            add = total - have
            if add <= 0:
                return have
            mcols = [r[1] for r in con.execute('PRAGMA table_info(messages)')]
            dcols = [r[1] for r in con.execute('PRAGMA table_info(deliveries)')]
            max_mid = con.execute('SELECT max(id) FROM messages').fetchone()[0]
            tmpl_seq, tmpl_mid = con.execute(
                'SELECT seq, message_id FROM deliveries WHERE session_id = ? '
                'ORDER BY seq DESC LIMIT 1', (sid,)).fetchone()
            max_seq = con.execute('SELECT max(seq) FROM deliveries').fetchone()[0]
            msel = ', '.join('c.i + %d' % max_mid if col == 'id' else
                             '1' if col == 'refs' else 'm.' + col for col in mcols)
            dsel = ', '.join('c.i + %d' % max_seq if col == 'seq' else
                             'c.i + %d' % max_mid if col == 'message_id' else
                             'd.' + col for col in dcols)
            cte = ('WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c '
                   'WHERE i < %d) ' % add)
            con.execute('BEGIN')
            con.execute('INSERT INTO messages (%s) %s SELECT %s FROM c, messages m WHERE m.id = %d'
                        % (', '.join(mcols), cte, msel, tmpl_mid))
            con.execute('INSERT INTO deliveries (%s) %s SELECT %s FROM c, deliveries d '
                        'WHERE d.session_id = %d AND d.seq = %d'
                        % (', '.join(dcols), cte, dsel, sid, tmpl_seq))
            con.execute('COMMIT')
            con.execute('PRAGMA wal_checkpoint(TRUNCATE)')
            return con.execute('SELECT count(*) FROM deliveries WHERE session_id = ?',
                               (sid,)).fetchone()[0]
        finally:
            con.close()

    def startup(self):
        rows = self.a.rows
        settings = {'max_queued_messages': rows * 2, 'max_queued_bytes': 0,
                    'session_expiry': 0, 'durability': 'process'}
        empty = self.broker('petreld', settings)
        t_empty = empty.start()
        rss_empty = empty.rss()
        empty.stop()

        b = self.broker('petreld', settings)
        b.start()
        seed = min(rows, 2000)
        self.client('sub', b.port, 'big', 'bench/big', 0)
        self.client('pub', b.port, 'bench/big', seed, 64, 20)
        b.stop()
        db = os.path.join(b.data_dir, 'petrel.db')
        t0 = time.monotonic()
        n = self.multiply_rows(db, 'big', rows)
        build_s = time.monotonic() - t0
        size_mb = os.path.getsize(db) / 1e6
        self.say('%-44s %d queued deliveries for one session, petrel.db %.0f MB (built in %.1f s)'
                 % ('start-up database', n, size_mb, build_s))
        starts = []
        rss_ready = []
        for i in range(self.a.starts):
            starts.append(b.start())
            time.sleep(0.2)
            rss_ready.append(b.rss())
            if i + 1 < self.a.starts:
                b.stop()
        # drain part of the queue while sampling the broker's RSS
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                v = b.rss()
                if v:
                    samples.append(v)
                time.sleep(0.02)
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        batch1 = min(10000, rows)
        d1 = self.client('sub', b.port, 'big', '-', batch1)
        rss_after_1 = b.rss()
        batch2 = min(self.a.drain, rows - batch1)
        d2 = self.client('sub', b.port, 'big', '-', batch2) if batch2 > 0 else None
        stop.set()
        th.join()
        rss_after_2 = b.rss()
        hwm = rss_kib(b.proc.pid, 'VmHWM')
        b.stop()
        r = {'settings': settings, 'queued_deliveries': n, 'db_mb': round(size_mb, 1),
             'startup_seconds': starts, 'startup_seconds_min': min(starts),
             'rss_kib_ready': rss_ready, 'empty_startup_seconds': t_empty,
             'empty_rss_kib_ready': rss_empty,
             'drain1': {'messages': batch1, 'seconds': d1['seconds'],
                        'first_message_seconds': d1['first_seconds'],
                        'rss_kib_after': rss_after_1},
             'drain2': ({'messages': batch2, 'seconds': d2['seconds'], 'msgs_per_s':
                         round(d2['rate']), 'rss_kib_after': rss_after_2} if d2 else None),
             'rss_kib_max_while_draining': max(samples) if samples else None,
             'vm_hwm_kib': hwm}
        self.say('%-44s %s s (fastest %.3f s); empty database: %.3f s'
                 % ('start-up time, %d queued' % n, ', '.join('%.3f' % s for s in starts),
                    min(starts), t_empty))
        self.say('%-44s %s KiB at ready; empty database: %s KiB'
                 % ('broker RSS, %d queued' % n, ', '.join(str(x) for x in rss_ready), rss_empty))
        self.say('%-44s %s KiB after draining %d (first message after %.3f s), %s KiB after %d '
                 'more (%s msgs/s); max while draining %s KiB; VmHWM %s KiB'
                 % ('broker RSS while draining', rss_after_1, batch1, d1['first_seconds'],
                    rss_after_2, batch2, round(d2['rate']) if d2 else '-',
                    r['rss_kib_max_while_draining'], hwm))
        return r

    def run(self):
        a = self.a
        self.results['settings'] = {
            'petreld': a.petreld, 'client': 'tests/bench/mqtt_bench (C, 20 in flight)',
            'payload_bytes': 64, 'publish_messages': a.n, 'drain_messages': a.drain,
            'startup_rows': a.rows, 'cpus': os.cpu_count(), 'quick': a.quick,
            'mosquitto': None if a.no_mosquitto else MOSQUITTO}
        self.say('# petrel store figures (%s%s); petreld %s; 64-byte payloads, QoS 1, 20 in flight'
                 % ('quick, ' if a.quick else '', '%d cpus' % os.cpu_count(), a.petreld))
        big = {'max_queued_messages': max(a.n, a.drain) * 2, 'max_queued_bytes': 0}
        f = self.results['figures']
        f['publish_rate'] = []
        for mode in ('process', 'power'):
            f['publish_rate'].append(self.publish_rate(
                'petreld', dict(big, durability=mode), 'petreld durability=%s' % mode))
        if not a.no_mosquitto:
            mq = self.publish_rate('mosquitto', {'max_queued_messages': big['max_queued_messages']},
                                   'mosquitto persistence=true')
            f['publish_rate'].append(mq)
            ratio = f['publish_rate'][0]['publisher_msgs_per_s'] / mq['publisher_msgs_per_s']
            ratio_p = f['publish_rate'][1]['publisher_msgs_per_s'] / mq['publisher_msgs_per_s']
            f['publish_rate_ratio_vs_mosquitto'] = {'process': round(ratio, 2),
                                                    'power': round(ratio_p, 2)}
            self.say('%-44s %.2f (durability=process), %.2f (durability=power)'
                     % ('qos1 publish rate petreld/mosquitto', ratio, ratio_p))
        f['drain'] = [self.drain_rate('petreld', dict(big, durability='process'),
                                      'petreld durability=process')]
        if not a.no_mosquitto:
            mq = self.drain_rate('mosquitto', {'max_queued_messages': big['max_queued_messages']},
                                 'mosquitto persistence=true')
            f['drain'].append(mq)
            ratio = f['drain'][0]['drain_msgs_per_s'] / mq['drain_msgs_per_s']
            f['drain_ratio_vs_mosquitto'] = round(ratio, 2)
            self.say('%-44s %.2f' % ('drain rate petreld/mosquitto', ratio))
        f['startup'] = self.startup()
        return self.results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--petreld', required=True)
    ap.add_argument('--bench', required=True, help='the mqtt_bench binary')
    ap.add_argument('--quick', action='store_true', help='small counts (well under a minute)')
    ap.add_argument('--n', type=int, help='messages for the publish rate (default 50000)')
    ap.add_argument('--drain', type=int, help='messages for the drain rate (default 100000)')
    ap.add_argument('--rows', type=int, help='queued rows for start-up (default 1000000)')
    ap.add_argument('--starts', type=int, default=3, help='start-ups to time (default 3)')
    ap.add_argument('--no-mosquitto', action='store_true', help='skip the reference runs')
    ap.add_argument('--json', help='also write the results as JSON to this file')
    a = ap.parse_args()
    a.n = a.n or (5000 if a.quick else 50000)
    a.drain = a.drain or (5000 if a.quick else 100000)
    a.rows = a.rows or (50000 if a.quick else 1000000)
    if not shutil.which(MOSQUITTO) and not os.path.exists(MOSQUITTO):
        a.no_mosquitto = True
    b = Bench(a)
    try:
        res = b.run()
    finally:
        b.cleanup()
    text = json.dumps(res, indent=2)
    if a.json:
        with open(a.json, 'w') as f:
            f.write(text + '\n')
        print('# JSON written to %s' % a.json)
    else:
        print('# JSON: ' + json.dumps(res))


if __name__ == '__main__':
    main()
