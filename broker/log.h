/*
 * log.h - petreld's log: one line per event on stderr, with a UTC timestamp
 * and a level.  Lines about a client always name it ("client <id>") so that
 * an operator can grep one client's history.
 */
#ifndef PETREL_LOG_H
#define PETREL_LOG_H

#include <stddef.h>

#include "config.h"

/* Messages above this level are discarded.  Changed at run time by SIGHUP. */
void log_set_level(enum log_level level);

/* True when a message at `level` would be written; lets callers skip
 * building expensive arguments. */
int log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
    do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

/* Strings that came from the network (client ids, user names, topics,
 * share names, reason strings) go into log lines only through these, so
 * that a client cannot forge a line or drive a terminal: control
 * characters (C0, DEL and the C1 range U+0080-U+009F), the backslash and
 * the quote that frames topics in log lines become \xHH (C1: \u00HH),
 * and anything past LOG_STR_MAX input bytes is cut and marked "...".
 * This is the one escaper of petreld; do not log such a string raw. */
#define LOG_STR_MAX 256

/* Writes the escaped form of s[0..len) into out (NUL-terminated, cut short
 * to fit `size`); returns its length. */
size_t log_escape(char *out, size_t size, const char *s, size_t len);
/* True when the escaped form differs from s itself. */
int log_escape_needed(const char *s, size_t len);
/* The escaped form in a new allocation (free()), or NULL when out of
 * memory. */
char *log_escape_dup(const char *s, size_t len);
/* The escaped form in one of LOG_STR_SLOTS buffers of this thread, used in
 * turn: valid until LOG_STR_SLOTS more calls, enough for the arguments of
 * one log line.  log_str0 is for NUL-terminated strings. */
#define LOG_STR_SLOTS 8
const char *log_str(const char *s, size_t len);
const char *log_str0(const char *s);

/* `petreld --reload` reports what a reload did: between log_capture_begin
 * and log_capture_end, every line at notice level or above (whatever the
 * log level) is also appended to buf as "LEVEL MESSAGE\n", cut short when
 * buf is full.  log_capture_end returns how many of them were errors. */
void log_capture_begin(char *buf, size_t len);
unsigned log_capture_end(void);
/* Stops capturing without ending (what the loop logs while a reload waits
 * for its files is not the reload's), and goes on where it stopped. */
void log_capture_suspend(void);
void log_capture_resume(void);

/* A rate limiter for messages that a misbehaving peer could trigger in a
 * loop (drops, refused connections): at most one line per `interval`
 * seconds per limiter; the number of suppressed events is reported with the
 * next line that gets through. */
struct log_ratelimit {
    long last;          /* monotonic second of the last line written */
    unsigned long suppressed;
};
/* Returns the number of events suppressed since the last line (>= 0) when
 * a line may be written now, or -1 when this event must be suppressed. */
long log_ratelimit_check(struct log_ratelimit *rl, long interval);
/* " (N more not logged)" for N > 0, "" for 0: the tail of a rate-limited
 * line.  Returns a static buffer. */
const char *log_suppressed(long n);

#endif
