/*
 * output_memory.c - the count of bytes in output buffers (see
 * output_memory.h).
 */
#include "output_memory.h"

#include <event2/buffer.h>

static uint64_t output_bytes;

static void output_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    (void)arg;
    output_bytes += info->n_added;
    output_bytes -= info->n_deleted < output_bytes ? info->n_deleted : output_bytes;
}

void output_memory_watch(struct evbuffer *out)
{
    if (out)
        evbuffer_add_cb(out, output_cb, NULL);
}

void output_memory_freed(size_t len)
{
    output_bytes -= len < output_bytes ? len : output_bytes;
}

uint64_t output_memory_bytes(void) { return output_bytes; }
