"""compare_bridge.py - the bridge scenarios of compare.py (docs/bridges.md):
the broker under test (petreld or mosquitto) is the *local* broker with a
bridge that forwards `cmpb/#` (B1, B1r) or `cmpk/#` (B2) at QoS 1 to a
*remote* Mosquitto started for the run; publishers use the local broker,
subscribers the remote (petrel bench --sub-port), so the figures are end
to end across the bridge.

B1  forward rate: one publisher, open loop (window 1000), one persistent
    subscriber at the remote.
B1r end-to-end latency at a fixed rate.
B2  kill -9 of the local broker while a QoS 1 stream is forwarded and the
    remote has stalled (SIGSTOP) for a moment: how many messages it had
    acknowledged never reach the remote's persistent subscriber after it
    restarts (Mosquitto's bridge queue is in memory and in its periodic
    snapshot, so it is expected to lose many).

Each scenario function has compare.py's signature fn(compare, broker, q):
`broker` is the freshly started local broker, which is restarted here with
the bridge added to its configuration.
"""

import json
import os
import shutil
import subprocess
import time

MOSQUITTO = shutil.which('mosquitto') or '/usr/sbin/mosquitto'
B1R_RATE = 2000          # messages per second for the latency run
KILL_STREAM = 10 ** 7    # more than a run can publish before the kill

NOT_SUPPORTED = {sid: {'nats': 'no MQTT bridge'} for sid in ('B1', 'B1r', 'B2')}
EXTRA = {
    'B1': [('p99_ms', 'latency p99 at full load', 'ms'),
           ('acked_per_sec', 'publisher acknowledged rate', 'msg/s')],
    'B1r': [('p50_ms', 'latency p50', 'ms'), ('max_ms', 'latency max', 'ms')],
    'B2': [('acked', 'messages acknowledged before the kill', 'msgs')],
}


def bridge_lines(kind, remote_port, topic):
    if kind == 'petreld':
        return ['bridge cmp', '    address = 127.0.0.1:%d' % remote_port,
                '    client_id = cmp-bridge', '    protocol = 3.1.1',
                '    reconnect_min = 1', '    reconnect_max = 2',
                '    out %s qos=1' % topic]
    # Mosquitto's own bridge, with the settings that keep what it can:
    # a persistent session at the remote, QoS 1, its inflight window.
    return ['connection cmp', 'address 127.0.0.1:%d' % remote_port,
            'remote_clientid cmp-bridge', 'bridge_protocol_version mqttv311',
            'cleansession false', 'restart_timeout 1 2', 'topic %s out 1' % topic]


def start_remote(local):
    # No bound on the remote's queues (max_queued_messages 0): B2's backlog
    # can pass compare.py's 200,000, and a message the remote itself drops
    # for its offline subscriber would be counted against the bridge.
    remote = type(local)('mosquitto', MOSQUITTO, True, 0)
    return remote.start()


def conf_path(b):
    return os.path.join(b.tmp, 'broker.conf')


def add_bridge(local, remote, topic):
    """Stops `local`, adds the bridge to its configuration, starts it again
    on the same data (and, for mosquitto, the same port)."""
    local.terminate(60)
    with open(conf_path(local), 'a') as f:
        f.write('\n'.join(bridge_lines(local.kind, remote.port, topic)) + '\n')
    respawn(local)


def respawn(b):
    b.spawn([b.exe, '-c', conf_path(b)])
    b.wait_ready(b._ready, 60)


def run_bench(c, port, args, timeout=600):
    """petrel bench --json; the parsed result (a failed run is part of what
    B2 measures, so it is not a failure here)."""
    cmd = [c.a.petrel, 'bench', '-h', '127.0.0.1', '-p', str(port), '--json',
           '--no-progress'] + [str(x) for x in args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError('petrel bench exited %d without a result:\n%s' %
                           (p.returncode, p.stderr[-2000:]))


def wait_forwarding(c, local, remote, topic, timeout=30):
    """Until a probe published on the local broker reaches the remote."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = run_bench(c, local.port, ['--sub-port', remote.port, '--pubs', 1, '--subs', 1,
                                      '-q', 1, '-n', 1, '-t', topic, '-T', topic,
                                      '--timeout', 2])
        if r['received']['lost'] == 0:
            return
    raise RuntimeError('%s: the bridge did not forward within %d s' % (local.kind, timeout))


def across(c, b, q, label, pace):
    """One publisher on the local broker, one persistent subscriber at the
    remote, QoS 1, open loop; `pace`: petrel bench's rate arguments."""
    remote = start_remote(b)
    try:
        add_bridge(b, remote, 'cmpb/#')
        wait_forwarding(c, b, remote, 'cmpb/probe')
        return c.open_loop(b, q, label, ['--sub-port', remote.port, '--pubs', 1, '--subs', 1,
                                         '--persistent', '-i', c.uid(label.lower()),
                                         '-t', 'cmpb/x', '-T', 'cmpb/x'] + pace)
    finally:
        remote.stop()


def b1(c, b, q):
    return across(c, b, q, 'B1', ['--backlog', 0])


def b1r(c, b, q):
    return across(c, b, q, 'B1r', ['-r', B1R_RATE])


def b2(c, b, q):
    remote = start_remote(b)
    try:
        add_bridge(b, remote, 'cmpk/#')
        wait_forwarding(c, b, remote, 'cmpk/probe')
        sid = c.uid('b2')
        # The remote's persistent subscriber, away while the stream runs.
        run_bench(c, remote.port, ['--pubs', 0, '--subs', 1, '-c', '-i', sid, '-q', 1,
                                   '-n', 0, '-T', 'cmpk/x'])
        cmd = [c.a.petrel, 'bench', '-h', '127.0.0.1', '-p', str(b.port), '--json',
               '--no-progress', '--pubs', 1, '--subs', 0, '-q', 1, '-w', 100,
               '-n', KILL_STREAM, '-t', 'cmpk/x', '-i', sid + '-load', '--timeout', 3]
        cmd = [str(x) for x in cmd]
        pub = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The remote stalls (SIGSTOP) a moment into the stream, so that what
        # the local broker acknowledges piles up in its bridge queue, as it
        # does whenever the link is slow or down; then the local broker is
        # killed, and the remote goes on.
        time.sleep(0.3)
        remote.suspend()
        try:
            time.sleep(max(1.0, q['ol_dur'] / 2.0))
            b.proc.kill()  # kill -9 of the local broker, bridge queue and all
            b.proc.wait(10)
        finally:
            remote.resume()
        out, _ = pub.communicate(timeout=120)
        res = json.loads(out.strip().splitlines()[-1])
        sent, acked = res['published']['sent'], res['published']['acked']
        respawn(b)
        # Time for the restarted bridge to reconnect and forward what it kept.
        time.sleep(3)
        drain = run_bench(c, remote.port, ['--pubs', 0, '--subs', 1, '-c', '-i', sid, '-q', 1,
                                           '-n', sent, '-T', 'cmpk/x', '--timeout', 10])
        if os.environ.get('COMPARE_BRIDGE_DEBUG'):
            print('    B2 %s: publisher %r; drain %r' % (b.kind, res['published'],
                                                      drain['received']), flush=True)
        received = sent - drain['received']['lost']
        unacked = sent - acked
        acked_lost = max(0, (sent - received) - unacked)
        # 'lost' is what compare.py holds against a QoS 1 scenario: here only
        # the acknowledged ones count (those in flight at the kill may go).
        return {'acked_lost': acked_lost, 'acked': acked, 'sent': sent,
                'unacked_lost': sent - received - acked_lost, 'lost': acked_lost}
    finally:
        remote.stop()
