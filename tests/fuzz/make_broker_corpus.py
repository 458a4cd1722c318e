#!/usr/bin/python3
"""Writes the seed inputs of fuzz_broker to tests/fuzz/corpus/broker/.

Each seed is a conversation in fuzz_broker's chunk format: [client][len][bytes]
(client >= 0xF0 closes that client's socket).  The packets come from the
integration tests' independent raw client (tests/integration/mqttraw.py).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
import mqttraw as m  # noqa: E402


def chunks(who, data):
    out = b''
    for i in range(0, len(data), 255):
        part = data[i:i + 255]
        out += bytes([who, len(part)]) + part
    return out


def hangup(who):
    return bytes([0xF0 + who, 0])


SEEDS = {
    'pubsub_qos0': chunks(0, m.connect_packet('s', clean=True) + m.subscribe_packet(1, [('a/#', 0)]))
    + chunks(1, m.connect_packet('p') + m.publish_packet('a/b', b'hi')),
    'qos1_qos2': chunks(0, m.connect_packet('s', clean=False) + m.subscribe_packet(1, [('t', 2), ('+', 1)]))
    + chunks(1, m.connect_packet('p') + m.publish_packet('t', b'x', qos=1, pid=1)
             + m.publish_packet('t', b'y', qos=2, pid=2))
    + chunks(0, m.ack_packet(m.PUBACK, 1) + m.ack_packet(m.PUBREC, 2))
    + chunks(1, m.ack_packet(m.PUBREL, 2)) + chunks(0, m.ack_packet(m.PUBCOMP, 2)),
    'retained': chunks(1, m.connect_packet('p') + m.publish_packet('r/1', b'keep', retain=True)
                       + m.publish_packet('r/2', b'', retain=True))
    + chunks(0, m.connect_packet('s') + m.subscribe_packet(7, [('r/+', 1)])),
    'will_hangup': chunks(0, m.connect_packet('s') + m.subscribe_packet(1, [('w', 1)]))
    + chunks(1, m.connect_packet('dying', will=('w', b'bye', 1, False)))
    + hangup(1),
    'takeover': chunks(0, m.connect_packet('same', clean=False, will=('w', b'old', 0, True))
                       + m.subscribe_packet(3, [('x/#', 1)]))
    + chunks(1, m.connect_packet('same', clean=False))
    + chunks(2, m.connect_packet('pub') + m.publish_packet('x/y', b'z', qos=1, pid=9)),
    'unsubscribe_ping_disconnect': chunks(0, m.connect_packet('u') + m.subscribe_packet(1, [('a', 0)])
                                          + m.unsubscribe_packet(2, ['a']) + m.PINGREQ_BYTES
                                          + m.DISCONNECT_BYTES),
    'offline_queue': chunks(0, m.connect_packet('q', clean=False) + m.subscribe_packet(1, [('q', 1)])
                            + m.DISCONNECT_BYTES)
    + chunks(1, m.connect_packet('p') + b''.join(m.publish_packet('q', b'%d' % i, qos=1, pid=i + 1)
                                                  for i in range(12)))
    + chunks(2, m.connect_packet('q', clean=False)),
    # MQTT 5.0
    'v5_props_alias': chunks(0, m.connect5_packet('s5', props=[(m.P_TOPIC_ALIAS_MAXIMUM, 2),
                                                               (m.P_RECEIVE_MAXIMUM, 1),
                                                               (m.P_MAXIMUM_PACKET_SIZE, 200)])
                             + m.subscribe5_packet(1, [('a/#', 2)]))
    + chunks(1, m.connect5_packet('p5') + m.publish5_packet(
        'a/b', b'hi', 1, pid=1, props=[(m.P_TOPIC_ALIAS, 1), (m.P_USER_PROPERTY, ('k', 'v')),
                                       (m.P_MESSAGE_EXPIRY, 10), (m.P_PAYLOAD_FORMAT, 1)])
             + m.publish5_packet('', b'again', 2, pid=2, props=[(m.P_TOPIC_ALIAS, 1)]))
    + chunks(0, m.ack5_packet(m.PUBACK, 1) + m.ack5_packet(m.PUBREC, 2, 0x80))
    + chunks(1, m.ack5_packet(m.PUBREL, 2) + m.ack5_packet(m.PUBREL, 9)),
    'v5_session_will': chunks(0, m.connect5_packet('w5', clean=False,
                                                   props=[(m.P_SESSION_EXPIRY, 30)],
                                                   will=('w', b'late', 1, True),
                                                   will_props=[(m.P_WILL_DELAY, 5),
                                                               (m.P_CONTENT_TYPE, 't')]))
    + chunks(1, m.connect5_packet('x') + m.subscribe5_packet(2, [('w', 1)]))
    + hangup(0)
    + chunks(2, m.connect5_packet('w5', clean=False, props=[(m.P_SESSION_EXPIRY, 30)])
             + m.disconnect5_packet(0x04, [(m.P_SESSION_EXPIRY, 0)])),
    'v5_errors': chunks(0, m.connect5_packet('e', props=[(m.P_AUTH_METHOD, 'x')]))
    + chunks(1, m.connect5_packet('f') + m.packet(m.AUTH, 0, b'\x18\x00'))
    + chunks(2, m.connect5_packet('g') + m.publish5_packet('', b'x', props=[(m.P_TOPIC_ALIAS, 7)])),
}


def main():
    out = os.path.join(HERE, 'corpus', 'broker')
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
