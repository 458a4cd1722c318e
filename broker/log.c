/*
 * log.c - timestamped, levelled log lines on stderr.  One fprintf per line
 * and line buffering keep lines whole even when stderr is a pipe to journald.
 * When stderr is the journal, each line also starts with its syslog
 * priority ("<3>"), so that `journalctl -p warning` filters petreld's lines.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

static enum log_level current_level = LOG_NOTICE;

/* Per thread: only the lines of the thread that captures (the loop's)
 * belong to its reload; the storage thread's go to stderr alone. */
static _Thread_local char *capture_buf;
static _Thread_local size_t capture_len, capture_used;
static _Thread_local unsigned capture_errors;
static _Thread_local char *suspended_buf;

static const char *const level_names[] = {"error", "warning", "notice", "info", "debug"};
/* syslog priorities: err, warning, notice, info, debug */
static const char *const journal_prefix[] = {"<3>", "<4>", "<5>", "<6>", "<7>"};

/* systemd sets JOURNAL_STREAM to "DEVICE:INODE" of the stream it connected
 * to stderr; a match means our stderr is that stream (not redirected). */
static int stderr_is_journal(void)
{
    static int known = -1;
    if (known < 0) {
        const char *js = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        known = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
                (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
    }
    return known;
}

void log_set_level(enum log_level level) { current_level = level; }
int log_enabled(enum log_level level) { return level <= current_level; }

void log_capture_begin(char *buf, size_t len)
{
    capture_buf = len ? buf : NULL;
    capture_len = len;
    capture_used = 0;
    capture_errors = 0;
    if (capture_buf)
        capture_buf[0] = '\0';
}

unsigned log_capture_end(void)
{
    capture_buf = NULL;
    suspended_buf = NULL;
    return capture_errors;
}

void log_capture_suspend(void)
{
    suspended_buf = capture_buf;
    capture_buf = NULL;
}

void log_capture_resume(void)
{
    if (suspended_buf)
        capture_buf = suspended_buf;
    suspended_buf = NULL;
}

static void capture(enum log_level level, const char *text)
{
    if (level == LOG_ERROR)
        capture_errors++;
    if (capture_used + 1 >= capture_len)
        return;
    int n = snprintf(capture_buf + capture_used, capture_len - capture_used, "%s %s\n",
                     level_names[level], text);
    if (n > 0)
        capture_used += (size_t)n < capture_len - capture_used ? (size_t)n
                                                               : capture_len - capture_used - 1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > current_level && !(capture_buf && level <= LOG_NOTICE))
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char stamp[40];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (capture_buf && level <= LOG_NOTICE)
        capture(level, text);
    if (level > current_level)
        return;
    fprintf(stderr, "%s%s.%03ldZ %s %s\n", stderr_is_journal() ? journal_prefix[level] : "", stamp,
            (long)(tv.tv_usec / 1000), level_names[level], text);
}

long log_ratelimit_check(struct log_ratelimit *rl, long interval)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (rl->last != 0 && now.tv_sec - rl->last < interval) {
        rl->suppressed++;
        return -1;
    }
    long n = (long)rl->suppressed;
    rl->suppressed = 0;
    rl->last = now.tv_sec == 0 ? 1 : now.tv_sec;
    return n;
}

const char *log_suppressed(long n)
{
    static char buf[48];
    if (n <= 0)
        return "";
    snprintf(buf, sizeof buf, " (%ld more not logged)", n);
    return buf;
}

/* Bytes of the escaped form of the character at s[i], and how many input
 * bytes it spans (in *span). */
static size_t escaped_width(const unsigned char *s, size_t i, size_t len, size_t *span)
{
    *span = 1;
    if (s[i] < 0x20 || s[i] == 0x7f || s[i] == '\\' || s[i] == '\'')
        return 4; /* \xHH */
    if (s[i] == 0xc2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f) {
        *span = 2; /* a C1 control in UTF-8: CSI (U+009B) drives terminals */
        return 6;  /* \u00HH */
    }
    return 1;
}

int log_escape_needed(const char *s, size_t len)
{
    if (len > LOG_STR_MAX)
        return 1;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0, span; i < len; i += span)
        if (escaped_width(u, i, len, &span) != 1)
            return 1;
    return 0;
}

size_t log_escape(char *out, size_t size, const char *s, size_t len)
{
    if (size == 0)
        return 0;
    const unsigned char *u = (const unsigned char *)s;
    size_t n = len > LOG_STR_MAX ? LOG_STR_MAX : len;
    size_t o = 0, i = 0, span;
    while (i < n) {
        size_t w = escaped_width(u, i, len, &span);
        if (o + w + 1 > size)
            break;
        if (w == 4)
            snprintf(out + o, 5, "\\x%02x", u[i]);
        else if (w == 6)
            snprintf(out + o, 7, "\\u00%02x", u[i + 1]);
        else
            out[o] = (char)u[i];
        o += w;
        i += span;
    }
    if (i < len && o + 4 <= size) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return o;
}

/* The worst case: every input byte escaped, and the "..." mark. */
#define LOG_STR_BUF (LOG_STR_MAX * 4 + 8)

char *log_escape_dup(const char *s, size_t len)
{
    char *out = malloc(LOG_STR_BUF);
    if (!out)
        return NULL;
    size_t n = log_escape(out, LOG_STR_BUF, s, len);
    char *shrunk = realloc(out, n + 1);
    return shrunk ? shrunk : out;
}

const char *log_str(const char *s, size_t len)
{
    static _Thread_local char slots[LOG_STR_SLOTS][LOG_STR_BUF];
    static _Thread_local unsigned next;
    char *out = slots[next++ % LOG_STR_SLOTS];
    if (!s)
        return "(null)";
    log_escape(out, LOG_STR_BUF, s, len);
    return out;
}

const char *log_str0(const char *s) { return log_str(s, s ? strlen(s) : 0); }
