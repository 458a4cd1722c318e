"""Sessions cluster-wide (broker/cluster_session.c) against hostile bytes
and faults.

A three-server NATS cluster with JetStream and three petreld nodes; n3
reaches NATS only through a TCP proxy (as in test_cluster_js), so that it
can be cut off.  A raw NATS client written here (the protocol is text:
CONNECT, PUB, SUB, MSG/HMSG) plays a hostile node.  Checked:
  1. hostile requests on "petrel-sess.<node>": empty messages, truncated
     'T' and 'A' requests, lengths past the end, a huge id length, a few
     hundred seeded random messages, with and without a reply subject:
     every node stays up, a well-formed 'T' for an unknown id is answered
     'N', and a takeover with a queue still works afterwards;
  2. garbage in the KV bucket ("$KV.petrel-sessions.s.<40 hex>"): values
     that do not decode, truncated records, a record naming no owner, a
     record whose session header does not decode, a record at a key that
     is not its client id's: every node stays up, the next claim of each
     id is accepted and overwrites the record with a good one, and a
     record at a wrong key does not end the session it names;
  3. a node cut off from NATS while its client connects to another node:
     session present (from the record), and once the node is back what it
     had queued arrives (no loss; QoS 1 / QoS 2 duplicates printed);
  4. the new owner killed (-9) right after the takeover's CONNACK and
     started again: the session and its queue are there, and the old node
     does not bring its copy back;
  5. two CONNECTs of one client id on two nodes at once, several rounds:
     never both connected; the queue delivered (no loss, QoS 2 twice
     printed and checked).
No line at level error in any node's log.
Exact counts are printed."""

import base64
import collections
import hashlib
import json
import os
import random
import re
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqttraw  # noqa: E402
from nats_helpers import ClusterNodes, cluster_test, NatsCluster, TcpProxy  # noqa: E402
import test_cluster_session  # noqa: E402  (its helpers; a module import runs none of its tests)

_S = test_cluster_session.ClusterSessions

SESSIONS_LINE = test_cluster_session.SESSIONS_LINE
BUCKET = 'petrel-sessions'
SETTLE = test_cluster_session.SETTLE
EXPIRY = 600
ERROR_LINE = re.compile(r'^\S+Z error (.*)$', re.M)
WARNING_LINE = re.compile(r'^\S+Z warning (.*)$', re.M)


def report(what, **counts):
    sys.stderr.write('  %s: %s\n' % (what, ', '.join('%s %s' % kv for kv in counts.items())))


# ---- a raw NATS client ------------------------------------------------------
class RawNats:
    """Just enough of the NATS client protocol: publish any bytes (with or
    without a reply subject), subscribe, request."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.buf = b''
        self.sid = 0
        self.msgs = []  # (subject, reply, headers bytes, data) not yet taken
        self._line(time.monotonic() + timeout)  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                          b'"no_responders":true,"protocol":1}\r\n')
        self.flush(timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError('nats: nothing within the time')
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError('nats: nothing within the time')
        if not d:
            raise ConnectionError('nats: connection closed')
        self.buf += d

    def _line(self, deadline):
        while b'\r\n' not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line.decode()

    def _bytes(self, n, deadline):
        while len(self.buf) < n + 2:
            self._fill(deadline)
        d, self.buf = self.buf[:n], self.buf[n + 2:]
        return d

    def _read_one(self, deadline):
        """Reads one protocol line (and its payload); returns 'PONG', a
        message tuple, or None for anything else."""
        line = self._line(deadline)
        op = line.split(' ', 1)[0].upper()
        if op == 'PING':
            self.sock.sendall(b'PONG\r\n')
            return None
        if op == 'PONG':
            return 'PONG'
        if op == '-ERR':
            raise AssertionError('nats: %s' % line)
        if op in ('MSG', 'HMSG'):
            f = line.split(' ')
            if op == 'MSG':
                reply = f[3] if len(f) == 5 else None
                data = self._bytes(int(f[-1]), deadline)
                return (f[1], reply, b'', data)
            reply = f[3] if len(f) == 6 else None
            hl, tl = int(f[-2]), int(f[-1])
            body = self._bytes(tl, deadline)
            return (f[1], reply, body[:hl], body[hl:])
        return None

    def flush(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        self.sock.sendall(b'PING\r\n')
        while True:
            r = self._read_one(deadline)
            if r == 'PONG':
                return
            if r:
                self.msgs.append(r)

    def pub(self, subject, data, reply=None):
        head = 'PUB %s %s%d\r\n' % (subject, reply + ' ' if reply else '', len(data))
        self.sock.sendall(head.encode() + bytes(data) + b'\r\n')

    def sub(self, subject):
        self.sid += 1
        self.sock.sendall(b'SUB %s %d\r\n' % (subject.encode(), self.sid))
        return self.sid

    def request(self, subject, data, timeout=5.0):
        """The first answer's (headers, data), or None (no answer / no
        responders)."""
        inbox = '_INBOX.hostile.%d.%d' % (os.getpid(), random.getrandbits(48))
        sid = self.sub(inbox)
        self.pub(subject, data, inbox)
        deadline = time.monotonic() + timeout
        try:
            while True:
                for i, m in enumerate(self.msgs):  # (the others stay)
                    if m[0] == inbox:
                        del self.msgs[i]
                        if m[2].startswith(b'NATS/1.0 503'):
                            return None
                        return m[2], m[3]
                r = self._read_one(deadline)
                if r and r != 'PONG':
                    self.msgs.append(r)
        except TimeoutError:
            return None
        finally:
            self.sock.sendall(b'UNSUB %d\r\n' % sid)


# ---- the record's format (cluster_session.c, session_state.h) ---------------
def key_of(cid):
    return 's.' + hashlib.sha256(cid.encode()).hexdigest()[:40]


def str16(b):
    return struct.pack('!H', len(b)) + b


def header(cid, subs=()):
    """A 3.1.1 persistent session's header: subs = [(filter, qos)]."""
    b = bytes([1]) + b'H' + str16(cid.encode()) + bytes([1]) + struct.pack('!I', 0)
    b += struct.pack('!I', len(subs))
    for f, q in subs:
        b += str16(f.encode()) + bytes([q]) + struct.pack('!I', 0)
    return b + struct.pack('!I', 0)


def record(owner, hdr, epoch=1, frm=b'', from_seq=0):
    owner = owner.encode() if isinstance(owner, str) else owner
    return (b'P\x01' + bytes([len(owner)]) + owner + struct.pack('!Q', epoch) +
            bytes([len(frm)]) + frm + struct.pack('!Q', from_seq) + hdr)


def decode_record(v):
    """(owner, client id) of a good record, or None."""
    try:
        if v[:2] != b'P\x01':
            return None
        o = 2
        ol = v[o]
        owner = v[o + 1:o + 1 + ol].decode()
        o += 1 + ol + 8
        fl = v[o]
        o += 1 + fl + 8
        h = v[o:]
        if h[:2] != b'\x01H':
            return None
        il = struct.unpack('!H', h[2:4])[0]
        return owner, h[4:4 + il].decode()
    except (IndexError, UnicodeDecodeError, struct.error):
        return None


class Kv:
    """The sessions bucket through the JetStream API on a raw client."""

    def __init__(self, nats):
        self.n = nats

    def put(self, key, value):
        r = self.n.request('$KV.%s.%s' % (BUCKET, key), value)
        if r is None:
            raise AssertionError('no JetStream answer to a put of %s' % key)
        ack = json.loads(r[1])
        if 'error' in ack:
            raise AssertionError('put %s: %r' % (key, ack))
        return ack['seq']

    def get(self, key):
        """The last value at key (bytes), or None."""
        r = self.n.request('$JS.API.STREAM.MSG.GET.KV_%s' % BUCKET,
                           json.dumps({'last_by_subj': '$KV.%s.%s' % (BUCKET, key)}).encode())
        if r is None:
            raise AssertionError('no JetStream answer to a get of %s' % key)
        ans = json.loads(r[1])
        if 'error' in ans:
            return None
        return base64.b64decode(ans['message'].get('data', ''))


# ---- MQTT 5.0 clients of one client id racing ------------------------------
class Racer:
    """A raw 5.0 connection that, once connected, acknowledges what comes
    (QoS 1 PUBACK, QoS 2 PUBREC / PUBCOMP) and notes how it ended."""

    def __init__(self, node, cid):
        self.node = node
        self.cid = cid
        self.c = mqttraw.Raw5(node.port)
        self.packet = mqttraw.connect5_packet(cid, clean=False, keepalive=60,
                                              props=[(mqttraw.P_SESSION_EXPIRY, EXPIRY)])
        self.ack = None
        self.error = None
        self.ended = None  # 'DISCONNECT 0x..' or 'closed'
        self.messages = []  # (topic, number, DUP flag)

    def go(self, barrier):
        try:
            barrier.wait(5)
            self.c.send(self.packet)
            self.ack = self.c.expect5(mqttraw.CONNACK, 15)
        except Exception as e:  # noqa: BLE001 (recorded, checked by the test)
            self.error = repr(e)

    @property
    def accepted(self):
        return self.ack is not None and self.ack.rc == 0

    def pump(self, seconds):
        """Reads and acknowledges for `seconds` (or until the end)."""
        deadline = time.monotonic() + seconds
        while self.ended is None and time.monotonic() < deadline:
            try:
                p = self.c.read5(max(0.01, deadline - time.monotonic()))
            except mqttraw.Timeout:
                continue
            except (mqttraw.Closed, OSError):
                self.ended = 'closed'
                return
            self._handle(p)

    def alive(self):
        """Connected still: a PINGREQ answered (messages meanwhile taken)."""
        if self.ended is not None or not self.accepted:
            return False
        if not self.c.try_send(mqttraw.PINGREQ_BYTES):
            self.ended = 'closed'
            return False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.ended is None:
            try:
                p = self.c.read5(0.2)
            except mqttraw.Timeout:
                continue
            except (mqttraw.Closed, OSError):
                self.ended = 'closed'
                return False
            if p.type == mqttraw.PINGRESP:
                return True
            self._handle(p)  # (anything else: as pump does)
        return False

    def _handle(self, p):
        if p.type == mqttraw.PUBLISH:
            self.messages.append((p.topic, harness.number_of(p.payload), p.dup))
            if p.qos == 1:
                self.c.try_send(mqttraw.ack5_packet(mqttraw.PUBACK, p.pid))
            elif p.qos == 2:
                self.c.try_send(mqttraw.ack5_packet(mqttraw.PUBREC, p.pid))
        elif p.type == mqttraw.PUBREL:
            self.c.try_send(mqttraw.ack5_packet(mqttraw.PUBCOMP, p.pid))
        elif p.type == mqttraw.DISCONNECT:
            self.ended = 'DISCONNECT 0x%02x' % p.rc

    def close(self):
        self.c.close()


@cluster_test
class ClusterSessionFaults(ClusterNodes, harness.BrokerTestCase):
    # The helpers of test_cluster_session.
    wait_stream = classmethod(_S.wait_stream.__func__)
    wait_crossing = classmethod(_S.wait_crossing.__func__)
    rejoin, publish, answered, collector, reached = (
        _S.rejoin, _S.publish, _S.answered, _S.collector, _S.reached)
    sessions_logged = True

    @classmethod
    def setUpClass(cls):
        cls.nats = NatsCluster().start()
        cls.proxy = TcpProxy(cls.nats.servers[2].port).start()
        cls.start_nodes(lambda i: cls.proxy.url if i == 3 else cls.nats.urls, cls.wait_stream,
                        cluster_stream_replicas=3)
        deadline = time.monotonic() + 15
        while not all(SESSIONS_LINE in b.run_log_text() for b in cls.nodes) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        cls.wait_crossing()

    def setUp(self):
        super().setUp()
        self.nats_clients = []

    def tearDown(self):
        for n in self.nats_clients:
            n.close()
        super().tearDown()
        for b in self.nodes:
            self.assertTrue(b.alive(), 'node died: %s' % b.tail())

    def raw_nats(self, server=0):
        n = RawNats(self.nats.servers[server].port)
        self.nats_clients.append(n)
        return n

    def assert_no_error_lines(self, allowed=()):
        for b in self.nodes:
            name = b.settings['node_name']
            bad = [ln for ln in ERROR_LINE.findall(b.run_log_text())
                   if not any(re.search(a, ln) for a in allowed)]
            self.assertEqual(bad[:10], [], 'error lines on %s' % name)

    def queue_for(self, owner, pub_node, cid, base, q1, q2):
        """Publishes q1 (QoS 1) and q2 (QoS 2) numbers on pub_node at
        base/q1, base/q2 and waits until they reached owner."""
        sent = set()
        witness = self.reached(owner, cid + '-w', base + '/#', lambda: sent)
        sent |= self.publish(pub_node, base + '/q1', min(q1), len(q1), qos=1)
        sent |= self.publish(pub_node, base + '/q2', min(q2), len(q2), qos=2)
        witness()
        return sent

    def counted(self, messages, base, q1, q2):
        """(missing q1, twice q1, missing q2, twice q2) of Collector
        messages."""
        n1 = collections.Counter(harness.number_of(m.payload) for m in messages
                                 if m.topic == base + '/q1')
        n2 = collections.Counter(harness.number_of(m.payload) for m in messages
                                 if m.topic == base + '/q2')
        return (sorted(set(q1) - set(n1)), sorted(k for k, v in n1.items() if v > 1),
                sorted(set(q2) - set(n2)), sorted(k for k, v in n2.items() if v > 1))

    def takeover_works(self, cid, a, b, pub):
        """A persistent session on a with 10 + 10 queued, taken on b."""
        c = self.collector(a, cid, clean=False)
        c.subscribe([(cid + '/#', 2)])
        c.disconnect()
        q1, q2 = range(0, 10), range(100, 110)
        self.queue_for(a, pub, cid, cid, q1, q2)
        c = self.collector(b, cid, clean=False)
        c.collect(done=lambda s: set(q1) | set(q2) <= set(s.numbers()), idle=0.5, timeout=15)
        c.disconnect()
        m1, t1, m2, t2 = self.counted(c.messages, cid, q1, q2)
        report('%s takeover %s -> %s' % (cid, a.settings['node_name'], b.settings['node_name']),
               session_present=int(c.session_present), qos1_missing=len(m1), qos2_missing=len(m2),
               qos2_twice=len(t2))
        self.assertTrue(c.session_present, 'takeover: no session present')
        self.assertEqual((m1, m2, t2), ([], [], []))

    # ---- 1. hostile requests -------------------------------------------------
    def test_1_hostile_requests(self):
        n1, n2, n3 = self.nodes
        # A session n1 owns, so that 'A' requests name an owned session.
        owned = self.collector(n1, 'hostile-owned', clean=False)
        owned.subscribe([('hostile-owned/#', 1)])
        owned.disconnect()
        time.sleep(SETTLE)
        nats = self.raw_nats()
        inbox = '_INBOX.junk.%d' % os.getpid()
        nats.sub(inbox + '.>')
        nats.flush()
        oid = b'hostile-owned'
        uid = b'hostile-nobody'
        crafted = [
            b'', b'T', b'A', b'X', b'\x00', b'T\x00', b'A\x00', b'T\xff\xff', b'A\xff\xff',
            b'T\xff\xff' + b'x' * 10, b'A\xff\xff' + b'x' * 10,
            b'T' + str16(uid),                        # stops before the user flag
            b'T' + str16(uid) + b'\x01',              # has a user, no length
            b'T' + str16(uid) + b'\x01\xff\xffab',    # user length past the end
            b'T' + str16(uid) + b'\x00\x00\x00',      # no node name length
            b'T' + str16(uid) + b'\x00\x00\x00\xc8ab',  # node name past the end
            b'T' + str16(uid) + b'\x00\x00\x00\x02abEXTRA',  # bytes after
            b'T' + str16(uid) + b'\x00\x00\x00\xff' + b'n' * 255,  # a name too long
            b'T' + str16(b'') + b'\x00\x00\x00\x00',  # empty id, empty node
            b'T' + str16(b'\xff\xfe\x00') + b'\x00\x00\x00\x01z',  # not UTF-8, NUL
            b'A' + str16(uid),                        # no deliveries
            b'A' + str16(uid) + b'junk',
            b'A' + str16(oid),
            b'A' + str16(oid) + b'junk',
            b'A' + str16(oid) + b'\x01D\xff\xff\xff\xff',  # a huge count, nothing after
            b'A' + str16(oid) + b'\x01D\x00\x00\x00\x01\x00\x01\x00',  # truncated delivery
            b'A' + str16(oid) + b'\x01H' + b'\x00' * 20,  # a header where a chunk goes
            b'T' * 5000, b'A' * 5000, bytes(range(256)) * 4,
        ]
        rng = random.Random(20261204)
        rand = []
        for _ in range(300):
            first = rng.choice([b'T', b'A', bytes([rng.randrange(256)])])
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
            if rng.random() < 0.3:  # a plausible start: id length then bytes
                body = str16(rng.choice([oid, uid, b'x' * rng.randrange(100)])) + body
            rand.append(first + body)
        sent = 0
        for i, data in enumerate(crafted + rand):
            subj = 'petrel-sess.%s' % ('n1' if i < len(crafted) else rng.choice(['n1', 'n2', 'n3']))
            nats.pub(subj, data)  # no reply subject
            nats.pub(subj, data, '%s.%d' % (inbox, i))
            sent += 2
        nats.flush()
        # A well-formed 'T' for an id nobody has: 'N'.
        ans = nats.request('petrel-sess.n1', b'T' + str16(uid) + b'\x00\x00\x00\x05ghost')
        time.sleep(1.0)
        try:
            nats.flush()
        except TimeoutError:
            pass
        answers = collections.Counter(m[3][:1] for m in nats.msgs if m[0].startswith(inbox))
        sys.stderr.write('\n')
        for b in self.nodes:
            w = WARNING_LINE.findall(b.run_log_text())
            report('warnings on %s' % b.settings['node_name'], count=len(w),
                   kinds=sorted(set(re.sub(r'client \S+', 'client _', x)[:90] for x in w))[:6])
        report('hostile requests', sent=sent, crafted=len(crafted), random=len(rand),
               answers=dict(answers), answer_to_good_T=ans and ans[1])
        for b in self.nodes:
            self.assertTrue(b.alive(), 'node %s died: %s' % (b.settings['node_name'], b.tail()))
        self.assertIsNotNone(ans, 'no answer to a well-formed T')
        self.assertEqual(ans[1], b'N')
        # The owned session is n1's still: a takeover on n2 works.
        self.takeover_works('hostile-owned', n1, n2, n3)
        self.takeover_works('hostile-after', n2, n3, n1)
        self.assert_no_error_lines()

    # ---- 2. garbage in the bucket ---------------------------------------------
    def test_2_garbage_records(self):
        n1, n2, n3 = self.nodes
        kv = Kv(self.raw_nats())
        rng = random.Random(7)
        good = header('junk-x')
        junk = {
            'junk-empty': b'',
            'junk-random': bytes(rng.randrange(256) for _ in range(64)),
            'junk-p': b'P',
            'junk-p1': b'P\x01',
            'junk-owner-cut': b'P\x01\x05n',
            'junk-epoch-cut': b'P\x01\x02n9\x00\x00\x00',
            'junk-from-cut': b'P\x01\x02n9' + b'\x00' * 8 + b'\x09ab',
            'junk-long-owner': b'P\x01\xc8' + b'o' * 200 + b'\x00' * 17,
            'junk-no-owner': record('', header('junk-no-owner')),
            'junk-bad-header': record('ghost', b'\x01H\xff\xff'),
            'junk-header-cut': record('ghost', header('junk-header-cut')[:-3]),
            'junk-other-id': record('ghost', good),
            'junk-n2-bad-header': record('n2', b'\x02Hzz'),
            'junk-version': b'P\x02' + record('ghost', header('junk-version'))[2:],
        }
        # A session connected on n2, and a record at another id's key that
        # names it: not its record, the session stays.
        victim = mqttraw.Raw5(n2.port)
        self._clients.append(victim)
        victim.connect5('junk-victim', clean=False, props=[(mqttraw.P_SESSION_EXPIRY, EXPIRY)])
        time.sleep(SETTLE)
        junk['junk-wrong-key'] = record('ghost', header('junk-victim', [('junk-victim/#', 1)]),
                                        epoch=99)
        for cid, v in junk.items():
            kv.put(key_of(cid), v)
        # A good record whose owner does not exist: the session from it.
        kv.put(key_of('junk-ghost-owned'),
               record('ghost', header('junk-ghost-owned', [('junk-ghost/#', 1)])))
        time.sleep(3.0)  # > STALE_GRACE_MS: what the watch does is done
        for b in self.nodes:
            self.assertTrue(b.alive(), 'node %s died: %s' % (b.settings['node_name'], b.tail()))
        with self.subTest('a record at a wrong key ends no session'):
            try:
                victim.send(mqttraw.PINGREQ_BYTES)
                p = victim.read5(5)
                ended = None if p.type == mqttraw.PINGRESP else repr(p)
            except (mqttraw.Closed, mqttraw.Timeout, OSError) as e:
                ended = repr(e)
            self.assertIsNone(ended, 'junk-victim on n2 ended by a record at another key')
        accepted, rewritten, present = 0, 0, []
        for cid in list(junk) + ['junk-ghost-owned']:
            if cid == 'junk-wrong-key':
                continue
            with self.subTest(record=cid):
                c = mqttraw.RawClient(n1.port)
                self._clients.append(c)
                try:
                    ack = c.connect(cid, clean=False, expect_rc=None)
                except (mqttraw.Timeout, mqttraw.Closed) as e:
                    self.fail('%s: no CONNACK (%r)' % (cid, e))
                self.assertEqual(ack.rc, 0, '%s refused' % cid)
                accepted += 1
                if ack.session_present:
                    present.append(cid)
                c.disconnect()
                deadline = time.monotonic() + 5
                rec = None
                while time.monotonic() < deadline:
                    rec = decode_record(kv.get(key_of(cid)) or b'')
                    if rec == ('n1', cid):
                        break
                    time.sleep(0.1)
                self.assertEqual(rec, ('n1', cid), '%s: the record not overwritten' % cid)
                rewritten += 1
        # The ghost-owned session came with its subscription.
        c = self.collector(n1, 'junk-ghost-owned', clean=False)
        self.publish(n3, 'junk-ghost/x', 7, 1, qos=1)
        c.collect(done=lambda s: 7 in s.numbers(), idle=0, timeout=10)
        c.disconnect()
        report('garbage records', written=len(junk) + 1, accepted=accepted, rewritten=rewritten,
               session_present=present, ghost_subscription=int(7 in c.numbers()))
        self.assertEqual(present, ['junk-ghost-owned'])
        self.assertIn(7, c.numbers(), 'the subscription of the record not in force')
        self.assert_no_error_lines()

    # ---- 3. a node cut off from NATS -------------------------------------------
    def test_3_owner_cut_off(self):
        n1, n2, n3 = self.nodes
        cid = base = 'cutoff'
        c = self.collector(n3, cid, clean=False)
        c.subscribe([(base + '/#', 2)])
        c.disconnect()
        time.sleep(SETTLE)
        q1, q2 = list(range(0, 50)), list(range(1000, 1050))
        self.queue_for(n3, n1, cid, base, range(0, 50), range(1000, 1050))
        self.proxy.cut()
        try:
            self.assertTrue(n3.wait_log('node n3 lost its NATS connection', timeout=10), n3.tail())
            # Published on n3 while it is cut off: queued in its copy (and
            # in its outbox, for NATS once it is back).
            q1 += sorted(self.publish(n3, base + '/q1', 100, 20, qos=1))
            q2 += sorted(self.publish(n3, base + '/q2', 1100, 20, qos=2))
            c = self.collector(n1, cid, clean=False, keepalive=300)
            sp = c.session_present
            self.publish(n2, base + '/after', 5000, 1, qos=1)
            c.collect(done=lambda s: 5000 in s.numbers(), idle=0, timeout=10)
            sub_ok = 5000 in c.numbers()
            before = len(c.messages)
        finally:
            self.proxy.mend()
        c.collect(done=lambda s: set(q1) | set(q2) <= set(s.numbers()), idle=3.0, timeout=40)
        c.disconnect()
        m1, t1, m2, t2 = self.counted(c.messages, base, q1, q2)
        report('cut off n3, client to n1', session_present=int(sp), subscription=int(sub_ok),
               queued=len(q1) + len(q2), before_n3_back=before, qos1_missing=len(m1),
               qos1_twice=len(t1), qos2_missing=len(m2), qos2_twice=len(t2),
               qos2_twice_numbers=t2[:10])
        with self.subTest('session present from the record'):
            self.assertTrue(sp)
        with self.subTest('its subscription in force on n1'):
            self.assertTrue(sub_ok)
        with self.subTest('no loss'):
            self.assertEqual((m1, m2), ([], []))
        self.assert_no_error_lines()

    # ---- 4. the new owner killed right after the takeover ------------------------
    def test_4_new_owner_killed_after_takeover(self):
        n1, n2, n3 = self.nodes
        cid = base = 'phoenix'
        c = self.collector(n1, cid, clean=False)
        c.subscribe([(base + '/#', 2)])
        c.disconnect()
        q1, q2 = range(0, 30), range(1000, 1030)
        sent = self.queue_for(n1, n3, cid, base, q1, q2)
        c = self.collector(n2, cid, clean=False, ack=False)
        sp = c.session_present
        n2.kill()
        try:
            self.rejoin(n2)
        except Exception:
            if not n2.alive():
                self.rejoin(n2)
            raise
        c = self.collector(n2, cid, clean=False)
        sp2 = c.session_present
        c.collect(done=lambda s: sent <= set(s.numbers()), idle=1.0, timeout=20)
        c.disconnect()
        m1, t1, m2, t2 = self.counted(c.messages, base, q1, q2)
        # n1 had given the session up: its copy must not come back.
        time.sleep(3.0 + SETTLE)  # > STALE_GRACE_MS: n1 has handed its rest
        c3 = self.collector(n1, cid, clean=False)
        self.publish(n3, base + '/after', 9000, 1, qos=1)
        c3.collect(done=lambda s: 9000 in s.numbers(), idle=1.5, timeout=10)
        c3.disconnect()
        again = sorted(set(c3.numbers()) & set(sent))
        report('new owner n2 killed after CONNACK', session_present=int(sp),
               after_restart=int(sp2), received=len(set(c.numbers()) & sent),
               qos1_missing=len(m1), qos1_twice=len(t1), qos2_missing=len(m2),
               qos2_twice=len(t2), old_again_on_n1=len(again),
               after_on_n1=c3.numbers().count(9000))
        with self.subTest('session present on n2'):
            self.assertTrue(sp and sp2, (sp, sp2))
        with self.subTest('the queue after the restart'):
            self.assertEqual((m1, m2), ([], []))
        with self.subTest('QoS 2 once'):
            self.assertEqual(t2, [])
        with self.subTest('the old node keeps no copy'):
            self.assertEqual(again, [], 'old messages again on n1')
            self.assertEqual(c3.numbers().count(9000), 1)
        self.assert_no_error_lines()

    # ---- 5. two CONNECTs of one client id at once ---------------------------------
    def test_5_connect_race(self):
        cid = base = 'racer'
        n1, n2, n3 = self.nodes
        pairs = [(n1, n2), (n2, n3), (n1, n3), (n2, n1), (n3, n2), (n3, n1)]
        r = Racer(n3, cid)
        r.go(threading.Barrier(1))
        self.assertTrue(r.accepted, r.error or r.ack)
        r.c.subscribe5([(base + '/#', 2)])
        r.c.send(mqttraw.disconnect5_packet(0))
        r.close()
        owner = n3
        outcomes = collections.Counter()
        both, none_left, problems = 0, 0, []
        total_missing, total_twice2, resent2 = 0, 0, 0
        for rnd, (a, b) in enumerate(pairs):
            time.sleep(SETTLE)
            q1 = range(rnd * 100, rnd * 100 + 10)
            q2 = range(10000 + rnd * 100, 10000 + rnd * 100 + 10)
            self.queue_for(owner, n1 if owner is not n1 else n2, '%s-%d' % (cid, rnd), base,
                           q1, q2)
            racers = [Racer(a, cid), Racer(b, cid)]
            barrier = threading.Barrier(2)
            ts = [threading.Thread(target=x.go, args=(barrier,)) for x in racers]
            for t in ts:
                t.start()
            for t in ts:
                t.join(20)
            for _ in range(8):  # 4 s: the loser's DISCONNECT comes
                for x in racers:
                    x.pump(0.25)
            alive = [x for x in racers if x.alive()]
            for x in racers:
                outcomes['%s: %s' % ('accepted' if x.accepted else
                                     ('rc 0x%02x' % x.ack.rc if x.ack else 'no CONNACK'),
                                     x.ended or ('connected' if x in alive else '-'))] += 1
            if len(alive) == 2:
                both += 1
                problems.append('round %d: both connected' % rnd)
            if not alive:
                none_left += 1
                retry = Racer(a, cid)
                retry.go(threading.Barrier(1))
                racers.append(retry)
                if retry.accepted:
                    alive = [retry]
                else:
                    problems.append('round %d: the retry refused: %r' % (rnd, retry.ack))
            if alive:
                x = alive[0]
                want = set(q1) | set(q2)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and \
                        not want <= {n for (_, n, _) in sum((y.messages for y in racers), [])}:
                    x.pump(0.2)
                x.pump(0.5)
                owner = x.node
                x.c.send(mqttraw.disconnect5_packet(0))
            got = sum((y.messages for y in racers), [])
            c1 = collections.Counter(n for (t, n, _) in got if t == base + '/q1')
            c2 = collections.Counter(n for (t, n, _) in got if t == base + '/q2')
            # A copy with DUP set is the same delivery sent again (its
            # handshake open when the connection it went to ended).
            fresh2 = collections.Counter(n for (t, n, d) in got if t == base + '/q2' and not d)
            missing = sorted((set(q1) - set(c1)) | (set(q2) - set(c2)))
            twice2 = sorted(k for k, v in fresh2.items() if v > 1)
            resent2 += sum(c2.values()) - sum(fresh2.values())
            total_missing += len(missing)
            total_twice2 += len(twice2)
            if missing:
                problems.append('round %d: missing %s' % (rnd, missing[:10]))
            if twice2:
                problems.append('round %d: QoS 2 twice %s' % (rnd, twice2[:10]))
            for x in racers:
                x.close()
        report('connect race', rounds=len(pairs), both_connected=both, none_connected=none_left,
               missing=total_missing, qos2_twice=total_twice2, qos2_resent_dup=resent2,
               outcomes=dict(outcomes))
        self.assertEqual(problems, [])
        self.assert_no_error_lines()


del _S  # (a TestCase among the module's names would have its tests run here)

if __name__ == '__main__':
    harness.main()
