/*
 * mqtt_frame.c - the MQTT fixed header: one type/flags byte followed by the
 * Remaining Length, a 1..4 byte base-128 integer.  This is what splits a TCP
 * byte stream into packets, so it must decide from the header alone.
 */
#include "mqtt_codec.h"

/*
 * The caller's buffer may hold only part of a header, so "not yet" is
 * distinguished from "never": INCOMPLETE asks for more bytes, anything
 * negative means the stream cannot be resynchronised and the connection is
 * dropped.  An error that the bytes at hand already prove (a fourth length
 * byte with its continuation bit set) is reported without waiting for more.
 */
enum mqtt_err mqtt_frame_header(const uint8_t *buf, size_t len, uint32_t max_packet,
                                uint8_t *first_byte, uint32_t *remaining, size_t *header_len)
{
    uint32_t value = 0;
    size_t i;

    if (len < 2)
        return MQTT_INCOMPLETE;

    /* Length bytes start at buf[1]; byte i contributes 7 bits at 7*(i-1). */
    for (i = 1; i < MQTT_MAX_FIXED_HEADER; i++) {
        if (i >= len)
            return MQTT_INCOMPLETE;
        uint8_t b = buf[i];
        value |= (uint32_t)(b & 0x7F) << (7 * (i - 1));
        if ((b & 0x80) == 0)
            break;
    }
    if (i == MQTT_MAX_FIXED_HEADER)
        return MQTT_E_MALFORMED;    /* a 5th length byte was announced */

    /*
     * The minimum number of bytes is required ([MQTT-1.5.5-1] in 5.0, the
     * encoding algorithm of section 2.2.3 in 3.1.1).  A multi-byte value is minimal exactly when
     * its last (most significant) group is non-zero; 0x80 0x00 is a second
     * spelling of 0 and would let two peers disagree on packet boundaries.
     */
    if (i > 1 && buf[i] == 0)
        return MQTT_E_MALFORMED;

    /* Set for MQTT_E_TOO_LARGE too: the caller says how large, and a
     * broker peeks at an oversized CONNECT's protocol level to answer it. */
    *first_byte = buf[0];
    *remaining = value;
    *header_len = i + 1;
    if (max_packet != 0 && (uint64_t)*header_len + value > max_packet)
        return MQTT_E_TOO_LARGE;
    return MQTT_OK;
}

size_t mqtt_encode_varint(uint32_t value, uint8_t *out)
{
    size_t n = 0;

    if (value > MQTT_MAX_REMAINING_LENGTH)
        return 0;
    do {
        uint8_t b = value & 0x7F;
        value >>= 7;
        if (value != 0)
            b |= 0x80;
        out[n++] = b;
    } while (value != 0);
    return n;
}
