/*
 * bench_topic.h - topic templates of `petrel bench` (%p publisher, %t topic
 * of that publisher, %s subscriber, %% a percent sign) and MQTT topic
 * filter matching, which tells how many messages each subscriber should get.
 */
#ifndef PETREL_CLI_BENCH_TOPIC_H
#define PETREL_CLI_BENCH_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

/* Expands `tmpl` into out[0..cap).  Returns the length, or -1 if it does not
 * fit or uses an unknown %-sequence. */
int topic_expand(const char *tmpl, unsigned long pub, unsigned long topic, unsigned long sub,
                 char *out, size_t cap);
/* Checks a template's %-sequences: NULL if fine, else what is wrong. */
const char *topic_template_error(const char *tmpl, const char *allowed);
/* Does topic name `topic` (len bytes) match `filter`?  MQTT rules, including
 * "$" topics not matching a leading wildcard. */
bool topic_matches(const char *filter, const char *topic, size_t len);

#endif
