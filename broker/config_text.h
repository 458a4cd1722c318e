/*
 * config_text.h - a text setting copied into a fixed field, checked the same
 * way wherever the configuration has one (config.c's listen options,
 * bridge_config.c's bridge sections).
 */
#ifndef PETREL_CONFIG_TEXT_H
#define PETREL_CONFIG_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Copies `v` into `field` (`size` bytes with its NUL): refused, with a
 * message naming `name` in err, when it is empty (unless `may_be_empty`),
 * does not fit, or holds a control character (it would end up in log lines
 * and on the wire).  0, or -1 with `field` untouched. */
int config_text(const char *name, const char *v, char *field, size_t size, bool may_be_empty,
                char *err, size_t errlen);

#endif
