#!/usr/bin/env python3
"""Writes the seed corpus for fuzz_decode: small valid MQTT 3.1.1 packets of
every type, plus a few multi-packet streams, built here independently of the
C encoder.  Run it from anywhere; it rewrites corpus/decode/seed-*."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "decode")


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack(">H", len(b)) + b


def packet(type_, flags, body):
    return bytes([type_ << 4 | flags]) + varint(len(body)) + body


def connect(cid="c", keepalive=60, clean=True, will=None, user=None, pw=None):
    flags = 0x02 if clean else 0
    payload = s(cid)
    if will:
        topic, msg, qos, retain = will
        flags |= 0x04 | qos << 3 | (0x20 if retain else 0)
        payload += s(topic) + s(msg)
    if user is not None:
        flags |= 0x80
        payload += s(user)
    if pw is not None:
        flags |= 0x40
        payload += s(pw)
    return packet(1, 0, s("MQTT") + bytes([4, flags]) + struct.pack(">H", keepalive) + payload)


def publish(topic, payload=b"", qos=0, pid=0, dup=False, retain=False):
    flags = (8 if dup else 0) | qos << 1 | (1 if retain else 0)
    body = s(topic) + (struct.pack(">H", pid) if qos else b"") + payload
    return packet(3, flags, body)


def ack(type_, pid):
    return packet(type_, 2 if type_ == 6 else 0, struct.pack(">H", pid))


def subscribe(pid, entries):
    return packet(8, 2, struct.pack(">H", pid) + b"".join(s(f) + bytes([q]) for f, q in entries))


def unsubscribe(pid, filters):
    return packet(10, 2, struct.pack(">H", pid) + b"".join(s(f) for f in filters))


SEEDS = {
    "connect-min": connect(cid="", keepalive=0),
    "connect-id": connect(cid="sensor-17", clean=False),
    "connect-will0": connect(will=("dev/1/status", "offline", 0, False)),
    "connect-will2-retain": connect(will=("dev/1/status", "", 2, True)),
    "connect-user": connect(user="alice"),
    "connect-userpass": connect(user="alice", pw=b"s3cret\x00\xff"),
    "connect-all": connect(cid="caf\u00e9", will=("w/t", "bye", 1, False), user="u", pw="p"),
    "connect-mqtt5": packet(1, 0, s("MQTT") + bytes([5, 2, 0, 60, 0]) + s("c")),
    "connect-mqisdp": packet(1, 0, s("MQIsdp") + bytes([3, 2, 0, 60]) + s("c")),
    "connack-ok": packet(2, 0, bytes([0, 0])),
    "connack-sp": packet(2, 0, bytes([1, 0])),
    "connack-refused": packet(2, 0, bytes([0, 5])),
    "publish-qos0": publish("a/b", b"hello"),
    "publish-qos0-retain-empty": publish("a/b", retain=True),
    "publish-qos1-dup": publish("sensors/\u20ac/t", b"21.5", qos=1, pid=1, dup=True),
    "publish-qos2": publish("x", bytes(range(40)), qos=2, pid=65535, retain=True),
    "publish-long": publish("big", b"z" * 200, qos=1, pid=7),
    "puback": ack(4, 1),
    "pubrec": ack(5, 0x1234),
    "pubrel": ack(6, 0x1234),
    "pubcomp": ack(7, 0x1234),
    "subscribe-one": subscribe(10, [("a/b", 1)]),
    "subscribe-multi": subscribe(11, [("sensors/+/temp", 0), ("#", 2), ("a+", 1), ("", 0)]),
    "suback": packet(9, 0, struct.pack(">H", 11) + bytes([0, 1, 2, 0x80])),
    "unsubscribe": unsubscribe(12, ["a/b", "x/#"]),
    "unsuback": ack(11, 12),
    "pingreq": packet(12, 0, b""),
    "pingresp": packet(13, 0, b""),
    "disconnect": packet(14, 0, b""),
}

STREAMS = {
    "stream-client": ["connect-all", "subscribe-multi", "publish-qos1-dup", "puback",
                      "publish-qos2", "pubrel", "unsubscribe", "pingreq", "disconnect"],
    "stream-server": ["connack-sp", "suback", "publish-qos0", "pubrec", "pubcomp",
                      "unsuback", "pingresp"],
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        if name.startswith("seed-"):
            os.remove(os.path.join(OUT, name))
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, "seed-" + name), "wb") as f:
            f.write(data)
    for name, parts in STREAMS.items():
        with open(os.path.join(OUT, "seed-" + name), "wb") as f:
            f.write(b"".join(SEEDS[p] for p in parts))


if __name__ == "__main__":
    main()
