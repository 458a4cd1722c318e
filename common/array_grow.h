/*
 * array_grow.h - the one growable-array step of petreld, libpetrel and the
 * CLI: an array kept as (pointer, count, capacity) that doubles when full.
 * Written once so that the overflow check and the "array unchanged on
 * failure" rule are not repeated (and forgotten) at every array.
 */
#ifndef PETREL_ARRAY_GROW_H
#define PETREL_ARRAY_GROW_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Makes room for `need` elements of `size` bytes in `items` (capacity
 * *cap): the capacity doubles, starting from `first` when it is 0, until it
 * holds `need`.  Returns the (possibly moved) array with *cap updated, or
 * NULL when out of memory or on overflow, with `items` and *cap untouched.
 * Call it only when need > *cap. */
static inline void *array_grow(void *items, size_t *cap, size_t need, size_t size, size_t first)
{
    size_t n = *cap ? *cap : first;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return NULL;
        n *= 2;
    }
    if (n > SIZE_MAX / size)
        return NULL;
    void *p = realloc(items, n * size);
    if (p)
        *cap = n;
    return p;
}

#endif
