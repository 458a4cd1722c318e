"""test_lib.py - libpetrel against real brokers: every test runs once against
petreld and once against Mosquitto, through driver.c (the asynchronous API)
and the example programs (asynchronous API and blocking facade)."""

import os
import signal

import clienttest as ct


class LibTests(ct.SharedBroker):
    broker_kind = None

    def setUp(self):
        self.drivers = []
        self.bg = []

    def tearDown(self):
        for b in self.bg:
            b.stop()
        for d in self.drivers:
            d.close()

    def run(self, result=None):
        failures = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result and len(result.failures) + len(result.errors) > failures:
            print(self.broker.tail())
        return out

    def driver(self, *args):
        d = ct.Driver(self.port, '--keepalive', 5, *args)
        self.drivers.append(d)
        return d

    def topic(self, suffix=''):
        return 'lib/%s/%s%s' % (self.broker_kind, self._testMethodName, suffix)

    def connected(self, *args, sp=0):
        d = self.driver(*args)
        d.call('connect')
        d.expect('connected sp=%d' % sp)
        return d

    def test_qos_round_trips(self):
        d = self.connected()
        t = self.topic()
        for q in (0, 1, 2):
            sid = d.call('sub %d %s/%d' % (q, t, q))
            d.expect('subscribed id=%d granted=%d$' % (sid, q))
            pid = d.call('pub %d 0 %s/%d payload at qos %d' % (q, t, q, q))
            self.assertEqual(d.messages(1), [('%s/%d' % (t, q), q, False, False,
                                              'payload at qos %d' % q)])
            d.expect('published id=%d rc=PETREL_OK' % pid)

    def test_queued_before_connect_sent_in_order(self):
        d = self.driver()
        t = self.topic()
        d.call('sub 1 %s' % t)
        d.call('pubn 1 %s m 20' % t)
        d.send('pending')
        d.expect('pending 20')
        d.call('connect')
        d.expect('connected sp=0')
        got = [m[4] for m in d.messages(20)]
        self.assertEqual(got, ['m%d' % i for i in range(20)])
        for i in range(20):
            d.expect('published id=\\d+ rc=PETREL_OK')
        d.send('pending')
        d.expect('pending 0')

    def test_queue_limit(self):
        d = self.driver('--queue', 3)
        d.send('pubn 1 %s x 5' % self.topic())
        d.expect('err pubn PETREL_EQUEUE_FULL')
        d.send('pending')
        d.expect('pending 3')
        d.send('pub 0 0 bad/+/topic x')
        d.expect('err pub PETREL_EINVAL')

    def test_unsubscribe(self):
        d = self.connected()
        t = self.topic()
        d.call('sub 0 %s' % t)
        d.expect('subscribed')
        uid = d.call('unsub %s' % t)
        d.expect('unsubscribed id=%d' % uid)
        d.call('pub 1 0 %s after' % t)
        d.expect('published')
        d.no_event('message', 0.3)

    def test_retained(self):
        d = self.connected()
        t = self.topic()
        d.call('pub 1 1 %s kept' % t)
        d.expect('published')
        e = self.connected()
        e.call('sub 1 %s' % t)
        self.assertEqual(e.messages(1), [(t, 1, True, False, 'kept')])
        d.call('pub 1 1 %s ' % t)   # empty retained message clears it
        d.expect('published')

    def test_persistent_session_resumes(self):
        cid = 'resume-%s-%d' % (self.broker_kind, os.getpid())
        t = self.topic()
        d = self.connected('--id', cid, '--persistent')
        d.call('sub 1 %s' % t)
        d.expect('subscribed')
        d.call('disconnect')
        d.expect('disconnected reason=PETREL_OK retry=0')
        for i in range(3):
            r = ct.run([ct.MOSQUITTO_PUB, '-p', str(self.port), '-t', t, '-q', '1',
                        '-m', 'while away %d' % i])
            self.assertEqual(r.returncode, 0, r.stderr)
        d.call('connect')
        d.expect('connected sp=1')
        self.assertEqual([m[4] for m in d.messages(3)], ['while away %d' % i for i in range(3)])

    def test_will_published_when_client_vanishes(self):
        t = self.topic()
        sub = ct.Background(['stdbuf', '-oL', ct.MOSQUITTO_SUB, '-p', str(self.port), '-t', t,
                             '-q', '1'])
        self.bg.append(sub)
        d = self.connected('--will', t, 'client gone', 1)
        # mosquitto_sub has no "subscribed" signal here: make sure it is
        # listening before the will can fire.
        ct.wait_until(lambda: self._subscriber_ready(t, sub), what='mosquitto_sub subscribed')
        d.kill()
        self.assertEqual(sub.line(), 'client gone')

    def _subscriber_ready(self, t, sub):
        ct.run([ct.MOSQUITTO_PUB, '-p', str(self.port), '-t', t, '-m', 'probe'])
        try:
            return sub.line(0.2) == 'probe'
        except AssertionError:
            return False

    def test_interop_with_mosquitto_clients(self):
        t = self.topic()
        d = self.connected()
        d.call('sub 2 %s/in' % t)
        d.expect('subscribed')
        r = ct.run([ct.MOSQUITTO_PUB, '-p', str(self.port), '-t', t + '/in', '-q', '2',
                    '-m', 'from mosquitto_pub'])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(d.messages(1), [(t + '/in', 2, False, False, 'from mosquitto_pub')])
        sub = ct.Background([ct.MOSQUITTO_SUB, '-p', str(self.port), '-t', t + '/out', '-q', '1',
                             '-C', '1', '-W', '10'])
        self.bg.append(sub)
        # mosquitto_sub cannot tell us when it has subscribed: publish
        # until a message gets through.
        def delivered():
            d.call('pub 1 0 %s/out from libpetrel' % t)
            d.expect('published')
            try:
                return sub.line(0.2) == 'from libpetrel'
            except AssertionError:
                return False
        ct.wait_until(delivered, what='delivery to mosquitto_sub')
        self.assertEqual(sub.wait(), 0)

    def test_examples(self):
        for name, extra in (('example_pubsub_async', []), ('example_publish_blocking', [])):
            path = os.path.join(ct.EXAMPLES, name)
            if not ct.have(path):
                self.skipTest('examples not built')
            r = ct.run([path, '127.0.0.1', str(self.port), self.topic('/' + name)] + extra,
                       timeout=30)
            self.assertEqual(r.returncode, 0, '%s: %s\n%s' % (name, r.stdout, r.stderr))
            self.assertIn('acknowledged' if 'async' in name else 'QoS 2 handshake', r.stdout)

    def test_blocking_facade_under_load(self):
        path = os.environ.get('PETREL_SYNC_CHECK', '')
        if not ct.have(path):
            self.skipTest('sync_check not built')
        r = ct.run([path, str(self.port), '2500'], timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class PetreldLib(LibTests, ct.unittest.TestCase):
    broker_kind = 'petreld'


class MosquittoLib(LibTests, ct.unittest.TestCase):
    broker_kind = 'mosquitto'


class MosquittoAuth(ct.unittest.TestCase):
    """Refusals that retrying cannot fix stop the client (Mosquitto with a
    password file; petreld has no authentication yet)."""

    @classmethod
    def setUpClass(cls):
        cls.broker = ct.Mosquitto(passwords={'alice': 'secret'}).start()

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()

    def test_bad_password_stops_client(self):
        d = ct.Driver(self.broker.port, '--user', 'alice', '--pass', 'wrong',
                      '--reconnect', 10, 20)
        try:
            d.call('connect')
            m = d.expect(r'disconnected reason=(\S+) retry=(\d)')
            self.assertIn(m.group(1), ('PETREL_ENOT_AUTHORIZED', 'PETREL_EBAD_CREDENTIALS'))
            self.assertEqual(m.group(2), '0')
            d.no_event('connected', 0.3)
        finally:
            d.close()

    def test_good_password(self):
        d = ct.Driver(self.broker.port, '--user', 'alice', '--pass', 'secret')
        try:
            d.call('connect')
            d.expect('connected sp=0')
        finally:
            d.close()


if __name__ == '__main__':
    ct.main()
