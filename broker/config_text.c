/*
 * config_text.c - the check of a text setting (config_text.h).
 */
#include "config_text.h"

#include <stdio.h>
#include <string.h>

static int refuse(char *err, size_t errlen, const char *name, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, "%s %s", name, why);
    return -1;
}

int config_text(const char *name, const char *v, char *field, size_t size, bool may_be_empty,
                char *err, size_t errlen)
{
    size_t n = strlen(v);
    if (n == 0 && !may_be_empty)
        return refuse(err, errlen, name, "is empty");
    if (n >= size) {
        char why[48];
        snprintf(why, sizeof why, "is longer than %zu bytes", size - 1);
        return refuse(err, errlen, name, why);
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return refuse(err, errlen, name, "contains a control character");
    memcpy(field, v, n + 1);
    return 0;
}
