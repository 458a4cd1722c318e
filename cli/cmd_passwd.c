/*
 * cmd_passwd.c - `petrel passwd`: add, change or delete a user in a petreld
 * password file.  The password is read without echo (or given with -b for
 * scripts) and only its salted PBKDF2 hash is written.  The file is
 * replaced atomically (temporary file, fsync, rename), so petreld reloading
 * it on SIGHUP never sees half a file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "commands.h"
#include "exit_codes.h"
#include "password_hash.h"

#define MAX_PASSWORD 65535 /* MQTT's limit */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: petrel passwd [-c] FILE USER             set USER's password (prompted)\n"
            "       petrel passwd [-c] -b FILE USER PASSWORD set it from the command line\n"
            "       petrel passwd -D FILE USER               delete USER\n"
            "Add, change or delete a user in a petreld password file (password_file).\n\n"
            "  -c, --create         start a new file, replacing FILE if it exists\n"
            "                       (without -c a missing FILE is created too)\n"
            "  -b, --batch          take the password from the command line; it is then\n"
            "                       visible to other users of this machine (ps)\n"
            "  -D, --delete         delete USER\n"
            "      --iterations N   PBKDF2-SHA512 rounds (default %u, at least %u)\n"
            "  -h, --help           show this help\n\n"
            "Without -b the password is asked twice, without echo, when stdin is a\n"
            "terminal; otherwise one line of stdin is the password.  The file holds\n"
            "one USER:HASH line per user and never the password.  A new file gets\n"
            "mode 0600; a replaced one keeps its owner and mode (without access for\n"
            "others).  Send petreld SIGHUP to load the change.\n\n"
            "%s",
            PW_HASH_DEFAULT_ITERATIONS, PW_HASH_MIN_ITERATIONS, EXIT_CODES_HELP);
}

/* ---- reading the password ------------------------------------------------ */

/* Reads one line into buf (without its newline).  Returns its length, or
 * -1 at end of input or when it does not fit. */
static long read_line(FILE *in, char *buf, size_t cap)
{
    if (!fgets(buf, (int)cap, in))
        return -1;
    size_t len = strlen(buf);
    if (len && buf[len - 1] == '\n')
        buf[--len] = '\0';
    else if (!feof(in))
        return -1; /* longer than the buffer */
    if (len && buf[len - 1] == '\r')
        buf[--len] = '\0';
    return (long)len;
}

static long prompt(FILE *tty, const char *text, char *buf, size_t cap)
{
    struct termios old, quiet;
    int fd = fileno(tty);
    if (tcgetattr(fd, &old) != 0)
        return -1;
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL;
    /* Echo goes off before the prompt appears: what is typed after it is
     * never shown. */
    if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0)
        return -1;
    fprintf(stderr, "%s", text);
    fflush(stderr);
    long n = read_line(tty, buf, cap);
    tcsetattr(fd, TCSAFLUSH, &old);
    return n;
}

/* Fills buf with the password.  Returns its length or -1 (message given). */
static long get_password(char *buf, size_t cap)
{
    if (!isatty(STDIN_FILENO)) {
        long n = read_line(stdin, buf, cap);
        if (n < 0)
            fprintf(stderr, "petrel passwd: no password on stdin (or longer than %d bytes)\n",
                    MAX_PASSWORD);
        return n;
    }
    char *again = malloc(cap);
    if (!again)
        return -1;
    long n = prompt(stdin, "Password: ", buf, cap);
    long m = n < 0 ? -1 : prompt(stdin, "Password again: ", again, cap);
    bool same = n >= 0 && m == n && memcmp(buf, again, (size_t)n) == 0;
    OPENSSL_cleanse(again, cap);
    free(again);
    if (n < 0 || m < 0) {
        fprintf(stderr, "petrel passwd: could not read the password\n");
        return -1;
    }
    if (!same) {
        fprintf(stderr, "petrel passwd: the passwords do not match\n");
        return -1;
    }
    return n;
}

/* ---- the file ------------------------------------------------------------ */

struct lines {
    char **v;
    size_t n, cap;
};

static int lines_add(struct lines *l, char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

/* Is `line` the entry of `user`? */
static bool is_user(const char *line, const char *user)
{
    size_t ulen = strlen(user);
    return strncmp(line, user, ulen) == 0 && line[ulen] == ':';
}

/* Reads every line of path (kept verbatim, without newline).  A missing
 * file is empty.  Returns 0, or -1 (message given). */
static int read_file(const char *path, struct lines *out)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        fprintf(stderr, "petrel passwd: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        if (n && line[n - 1] == '\n')
            line[n - 1] = '\0';
        char *copy = strdup(line);
        if (!copy || lines_add(out, copy) != 0) {
            free(copy);
            fprintf(stderr, "petrel passwd: out of memory\n");
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "petrel passwd: %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

/* Writes the lines to a temporary file beside path and renames it over
 * path.  Returns 0, or -1 (message given). */
static int write_file(const char *path, const struct lines *l)
{
    struct stat st;
    bool exists = stat(path, &st) == 0;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp)
        return -1;
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "petrel passwd: cannot create a file beside %s: %s\n", path,
                strerror(errno));
        free(tmp);
        return -1;
    }
    /* mkstemp made it 0600.  A file being replaced keeps its owner and
     * mode, so that petreld (perhaps another user in its group) can still
     * read it, but never lets others read the hashes. */
    if (exists) {
        if (fchown(fd, st.st_uid, st.st_gid) != 0 && errno != EPERM)
            fprintf(stderr, "petrel passwd: warning: %s: cannot keep the owner: %s\n", path,
                    strerror(errno));
        fchmod(fd, st.st_mode & 0660);
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    for (size_t i = 0; i < l->n; i++)
        fprintf(f, "%s\n", l->v[i]);
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "petrel passwd: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    /* The rename itself is durable once the directory is synced. */
    char *dir = strdup(path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        const char *d = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
        int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    return 0;
}

static bool user_valid(const char *user)
{
    if (!*user || strlen(user) > 65535)
        return false;
    for (const char *p = user; *p; p++)
        if (*p == ':' || (unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

int cmd_passwd(int argc, char **argv)
{
    enum { OPT_ITERATIONS = 1000 };
    static const struct option opts[] = {
        {"create", no_argument, NULL, 'c'},
        {"batch", no_argument, NULL, 'b'},
        {"delete", no_argument, NULL, 'D'},
        {"iterations", required_argument, NULL, OPT_ITERATIONS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    bool create = false, batch = false, del = false;
    unsigned long iterations = PW_HASH_DEFAULT_ITERATIONS;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "+cbDh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': create = true; break;
        case 'b': batch = true; break;
        case 'D': del = true; break;
        case OPT_ITERATIONS: {
            char *end;
            errno = 0;
            iterations = strtoul(optarg, &end, 10);
            if (errno || *end || optarg[0] < '0' || optarg[0] > '9' ||
                iterations < PW_HASH_MIN_ITERATIONS || iterations > PW_HASH_MAX_ITERATIONS) {
                fprintf(stderr, "petrel passwd: --iterations: '%s' is not a number in %u..%u\n",
                        optarg, PW_HASH_MIN_ITERATIONS, PW_HASH_MAX_ITERATIONS);
                return CLI_EXIT_USAGE;
            }
            break;
        }
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: usage(stderr); return CLI_EXIT_USAGE;
        }
    }
    int want = batch ? 3 : 2;
    if (del && (batch || create)) {
        fprintf(stderr, "petrel passwd: -D cannot be combined with -b or -c\n");
        return CLI_EXIT_USAGE;
    }
    if (argc - optind != want) {
        fprintf(stderr, "petrel passwd: expected %s\n\n",
                batch ? "FILE USER PASSWORD" : "FILE USER");
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *path = argv[optind], *user = argv[optind + 1];
    if (!user_valid(user)) {
        fprintf(stderr, "petrel passwd: user name must be 1 to 65535 bytes without ':' or "
                        "control characters\n");
        return CLI_EXIT_USAGE;
    }

    struct lines l = {0};
    if (!create && read_file(path, &l) != 0)
        return CLI_EXIT_FAILURE;
    size_t at = l.n;
    for (size_t i = 0; i < l.n && at == l.n; i++)
        if (is_user(l.v[i], user))
            at = i;

    int rc = CLI_EXIT_FAILURE;
    if (del) {
        if (at == l.n) {
            fprintf(stderr, "petrel passwd: %s: no user '%s'\n", path, user);
            goto out;
        }
        free(l.v[at]);
        memmove(l.v + at, l.v + at + 1, (l.n - at - 1) * sizeof *l.v);
        l.n--;
    } else {
        char *pw = malloc(MAX_PASSWORD + 2);
        if (!pw)
            goto out;
        long len;
        if (batch) {
            len = (long)strlen(argv[optind + 2]);
            if (len > MAX_PASSWORD) {
                fprintf(stderr, "petrel passwd: password longer than %d bytes\n", MAX_PASSWORD);
                free(pw);
                rc = CLI_EXIT_USAGE;
                goto out;
            }
            memcpy(pw, argv[optind + 2], (size_t)len);
        } else {
            len = get_password(pw, MAX_PASSWORD + 2);
        }
        char hash[PW_HASH_MAX_LEN];
        int made = len < 0 ? -1 : pw_hash_make(pw, (size_t)len, (unsigned)iterations, hash,
                                               sizeof hash);
        OPENSSL_cleanse(pw, MAX_PASSWORD + 2);
        free(pw);
        if (len < 0)
            goto out;
        if (made != 0) {
            fprintf(stderr, "petrel passwd: hashing failed (OpenSSL)\n");
            goto out;
        }
        size_t n = strlen(user) + 1 + strlen(hash) + 1;
        char *entry = malloc(n);
        if (!entry)
            goto out;
        snprintf(entry, n, "%s:%s", user, hash);
        if (at < l.n) {
            free(l.v[at]);
            l.v[at] = entry;
        } else if (lines_add(&l, entry) != 0) {
            free(entry);
            goto out;
        }
    }
    if (write_file(path, &l) == 0)
        rc = CLI_EXIT_OK;
out:
    lines_free(&l);
    return rc;
}
