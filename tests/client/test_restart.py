"""test_restart.py - libpetrel clients ride out a petreld restart without
losing an acknowledged QoS 1 message, now that petreld keeps sessions and
queues in its durable store.

A persistent subscriber (clean session 0, QoS 1) and a persistent publisher
are connected when petreld is stopped, once with SIGTERM and once with
SIGKILL.  Before that:
  - the subscriber is frozen (SIGSTOP) while the publisher sends messages
    the broker acknowledges: they are committed but not delivered;
  - the broker is frozen while the publisher sends more: they sit in the
    broker's socket, never acknowledged (the client must send them again).
While the broker is down the publisher publishes again (queued in the
client).  After a restart on the same port and data directory both clients
reconnect by themselves, resume their sessions, and the subscriber gets
every message.
"""

import signal
import time

import clienttest as ct
from test_reconnect import ReconnectBase, RestartCases


class PetreldRestart(RestartCases, ReconnectBase):

    def start_pair(self, tag):
        self.broker = ct.Petreld().start()
        return self.online_pair('rst', tag)

    def restart_check(self, sub, pub, crash):
        # Acknowledged by the broker, not yet taken by the subscriber.
        sub.proc.send_signal(signal.SIGSTOP)
        try:
            pub.call('pubn 1 r/x b 10')
            for _ in range(10):
                pub.expect('published id=\\d+ rc=PETREL_OK')
            # Written to the broker's socket, never read or acknowledged.
            self.broker.suspend()
            pub.call('pubn 1 r/x c 10')
            time.sleep(0.1)
            self.stop_broker(crash)
        finally:
            sub.proc.send_signal(signal.SIGCONT)
        # Queued by the client while the broker is down.
        self.resume_after_restart(sub, pub, crash, 'd',
                                  ['%s%d' % (p, i) for p in 'bcd' for i in range(10)], 20,
                                  'petreld restart')


if __name__ == '__main__':
    ct.main()
