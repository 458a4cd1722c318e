/*
 * main.c - petreld: command line, configuration, data directory lock,
 * signals and the event loop.  Everything here runs once; the work happens
 * in the callbacks the other modules register on the loop.  The broker
 * instance itself is made and freed by broker.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/event.h>

#include "bridge.h"
#include "broker.h"
#include "cluster.h"
#include "config.h"
#include "http_api.h"
#include "http_server.h"
#include "http_tokens.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "reload_request.h"
#include "retain.h"
#include "security.h"
#include "store.h"
#include "store_backup.h"
#include "sys_topics.h"

/* Command-line settings, kept so that a reload of the file (SIGHUP) does
 * not undo them. */
struct cli_overrides {
    const char *listen[CONFIG_MAX_LISTENERS];
    size_t n_listen;
    const char *data_dir;
    const char *log_level;
    int verbose;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: petreld [OPTIONS]\n"
            "Petrel MQTT broker.\n\n"
            "  -c, --config FILE       read settings from FILE (key = value lines)\n"
            "  -l, --listen ADDR:PORT  listen on ADDR:PORT; repeatable; replaces the\n"
            "                          file's listeners (IPv6: [::1]:1883; port 0 = any)\n"
            "  -d, --data-dir DIR      data directory (default /var/lib/petrel)\n"
            "  -v, --verbose           log level info; twice for debug\n"
            "      --inspect           print the sessions, queues and retained messages\n"
            "                          stored in the data directory, then exit\n"
            "      --backup DEST       copy the data directory's store to the file DEST\n"
            "                          (consistent, while petreld runs), then exit\n"
            "      --reload            make the petreld running on the data directory\n"
            "                          reload (SIGHUP), wait for it and print what it did\n"
            "      --print-config      print the effective settings (file, then flags)\n"
            "                          in configuration-file form, then exit\n"
            "      --log-level LEVEL   error, warning, notice (default), info or debug\n"
            "  -h, --help              show this help and exit\n"
            "  -V, --version           show the version and exit\n\n"
            "Command-line flags override the configuration file.\n"
            "Signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads the file and the\n"
            "TLS certificates.\n");
}

/* Applies the command line on top of the file.  Returns 0 or -1 with err. */
static int apply_overrides(struct config *c, const struct cli_overrides *o, char *err, size_t len)
{
    char msg[CONFIG_ERR_LEN - 32]; /* leaves room for the flag name */
    if (o->n_listen) {
        c->listeners_are_default = true; /* the first --listen replaces all */
        for (size_t i = 0; i < o->n_listen; i++) {
            if (config_set(c, "listen", o->listen[i], msg, sizeof msg) != 0) {
                snprintf(err, len, "--listen: %s", msg);
                return -1;
            }
            snprintf(c->listeners[c->n_listeners - 1].origin, sizeof c->listeners[0].origin,
                     "--listen");
        }
    }
    if (o->data_dir && config_set(c, "data_dir", o->data_dir, msg, sizeof msg) != 0) {
        snprintf(err, len, "--data-dir: %s", msg);
        return -1;
    }
    if (o->log_level && config_set(c, "log_level", o->log_level, msg, sizeof msg) != 0) {
        snprintf(err, len, "--log-level: %s", msg);
        return -1;
    }
    if (o->verbose == 1 && c->log_level < LOG_INFO)
        c->log_level = LOG_INFO;
    else if (o->verbose > 1)
        c->log_level = LOG_DEBUG;
    return 0;
}

static int load_config(struct config *c, const char *path, const struct cli_overrides *o,
                       char *err, size_t len)
{
    config_defaults(c);
    if (path && config_load_file(c, path, err, len) != 0)
        return -1;
    return apply_overrides(c, o, err, len);
}

/* Creates the data directory if needed and locks it, so that two brokers
 * never share one store. */
static int lock_data_dir(const char *dir)
{
    char path[4200];
    /* mkdir -p */
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0750) != 0 && errno != EEXIST) {
            log_error("data directory %s: cannot create %s: %s", dir, path, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(path, 0750) != 0 && errno != EEXIST) {
        log_error("data directory %s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/petreld.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        log_error("data directory %s: cannot open %s: %s", dir, path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        log_error("data directory %s is in use by another petreld (%s is locked)", dir, path);
        close(fd);
        return -1;
    }
    broker.lock_fd = fd;
    reload_record_start(fd); /* who to signal, for petreld --reload */
    return 0;
}

static struct cli_overrides overrides;

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    log_notice("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_server_shutting_down();
    event_base_loopbreak(broker.base);
}

static void on_expiry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    store_expire_sessions();
}

static void reload_finished(void);

static void reload(void)
{
    /* Renewed certificates are picked up whatever becomes of the file. */
    listeners_reload_tls();
    http_server_reload_tls();
    if (!broker.config_path) {
        log_notice("SIGHUP: no configuration file to reload");
        security_reload(&broker.cfg, reload_finished);
        return;
    }
    struct config fresh;
    char err[CONFIG_ERR_LEN];
    if (load_config(&fresh, broker.config_path, &overrides, err, sizeof err) != 0) {
        log_error("SIGHUP: reload failed, keeping the current settings: %s", err);
        security_reload(&broker.cfg, reload_finished);
        return;
    }
    /* Only what can change safely at run time is applied. */
    broker.cfg.log_level = fresh.log_level;
    log_set_level(fresh.log_level);
    log_notice("SIGHUP: configuration reloaded from %s (log_level %s)", broker.config_path,
               config_log_level_name(fresh.log_level));
    bridges_reload(&fresh.bridges);
    broker.cfg.bridges = fresh.bridges;
    security_reload(&fresh, reload_finished);
}

/* What the reload logs is also the answer to petreld --reload.  Its files
 * are read off the loop (security.h): a SIGHUP meanwhile runs after it. */
static char reload_lines[4096];
static bool reload_busy, reload_again;

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    if (reload_busy) {
        reload_again = true;
        return;
    }
    reload_busy = true;
    log_capture_begin(reload_lines, sizeof reload_lines);
    reload();
}

/* POST /api/v1/reload waits for the reload it asked for (http_api.h):
 * the one it starts, or the one after the reload under way. */
#define RELOAD_WAITERS 8
struct reload_waiter {
    http_reload_done done;
    void *arg;
};
static struct reload_waiter waiters[RELOAD_WAITERS], next_waiters[RELOAD_WAITERS];
static size_t n_waiters, n_next_waiters;

static void reload_finished(void)
{
    unsigned errors = log_capture_end();
    reload_record_done(broker.lock_fd, errors, reload_lines);
    reload_busy = false;
    size_t n = n_waiters;
    n_waiters = 0;
    for (size_t i = 0; i < n; i++)
        waiters[i].done(errors, reload_lines, waiters[i].arg);
    if (reload_again) {
        reload_again = false;
        memcpy(waiters, next_waiters, sizeof waiters);
        n_waiters = n_next_waiters;
        n_next_waiters = 0;
        on_reload(-1, 0, NULL);
    }
}

static int http_reload(http_reload_done done, void *arg)
{
    if (!reload_busy) {
        if (n_waiters == RELOAD_WAITERS)
            return -1;
        waiters[n_waiters++] = (struct reload_waiter){done, arg};
        on_reload(-1, 0, NULL);
        return 0;
    }
    if (n_next_waiters == RELOAD_WAITERS)
        return -1;
    next_waiters[n_next_waiters++] = (struct reload_waiter){done, arg};
    reload_again = true;
    return 0;
}

int main(int argc, char **argv)
{
    enum { OPT_LOG_LEVEL = 1000, OPT_INSPECT, OPT_BACKUP, OPT_RELOAD, OPT_PRINT_CONFIG };
    bool inspect = false, reload_running = false, print_config = false;
    const char *backup_dest = NULL, *config_path = NULL;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"listen", required_argument, NULL, 'l'},
        {"data-dir", required_argument, NULL, 'd'}, {"verbose", no_argument, NULL, 'v'},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"inspect", no_argument, NULL, OPT_INSPECT},
        {"backup", required_argument, NULL, OPT_BACKUP},
        {"reload", no_argument, NULL, OPT_RELOAD},
        {"print-config", no_argument, NULL, OPT_PRINT_CONFIG},
        {"help", no_argument, NULL, 'h'},           {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:l:d:vhV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'l':
            if (overrides.n_listen == CONFIG_MAX_LISTENERS) {
                fprintf(stderr, "petreld: --listen: at most %d listeners\n", CONFIG_MAX_LISTENERS);
                return 2;
            }
            overrides.listen[overrides.n_listen++] = optarg;
            break;
        case 'd': overrides.data_dir = optarg; break;
        case 'v': overrides.verbose++; break;
        case OPT_LOG_LEVEL: overrides.log_level = optarg; break;
        case OPT_INSPECT: inspect = true; break;
        case OPT_BACKUP: backup_dest = optarg; break;
        case OPT_RELOAD: reload_running = true; break;
        case OPT_PRINT_CONFIG: print_config = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("petreld %s\n", PETREL_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "petreld: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    /* Static: a struct config is large; broker_init takes a copy. */
    static struct config cfg;
    char err[CONFIG_ERR_LEN];
    if (load_config(&cfg, config_path, &overrides, err, sizeof err) != 0) {
        fprintf(stderr, "petreld: %s\n", err);
        return 2;
    }
    if (print_config) {
        /* What this command line would run with; it loads back as a file. */
        config_dump(&cfg, stdout);
        return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
    }
    if (inspect) {
        bool in_cluster = cfg.cluster_nats[0] != '\0';
        if (in_cluster)
            cluster_inspect(&cfg, stdout);
        return store_inspect(cfg.data_dir, cfg.session_expiry, in_cluster, stdout);
    }
    if (backup_dest)
        return store_backup(cfg.data_dir, backup_dest, stdout);
    if (reload_running)
        return reload_request(cfg.data_dir, 30, stdout, stderr);
    log_set_level(cfg.log_level);
    if (security_load(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "petreld: %s\n", err);
        return 2;
    }
    if (cfg.http_token_file[0]) {
        struct http_tokens *tokens = http_tokens_load(cfg.http_token_file, err, sizeof err);
        if (!tokens) {
            fprintf(stderr, "petreld: %s\n", err);
            return 2;
        }
        http_tokens_set(tokens);
    }
    signal(SIGPIPE, SIG_IGN);
    /* A file-size limit must make a write fail (and the store degrade and
     * recover), not kill the broker. */
    signal(SIGXFSZ, SIG_IGN);

    int rc = 1;
    struct event *ev_term = NULL, *ev_int = NULL, *ev_hup = NULL, *ev_expiry = NULL;
    if (broker_init(&cfg) != 0) {
        log_error("out of memory at start-up");
        goto out;
    }
    broker.config_path = config_path;
    log_notice("petreld %s starting (libevent %s, backend %s)", PETREL_VERSION,
               event_get_version(), event_base_get_method(broker.base));
    if (lock_data_dir(broker.cfg.data_dir) != 0)
        goto out;
    if (store_open(broker.cfg.data_dir, err, sizeof err) != 0) {
        log_error("%s", err);
        goto out;
    }
    /* Before the load: the sessions it restores subscribe on NATS too. */
    if (cluster_start() != 0)
        goto out;
    if (store_load() != 0)
        goto out;
    retain_recount();
    if (security_start() != 0) {
        log_error("cannot start the password check threads");
        goto out;
    }
    if (listeners_open() != 0)
        goto out;
    if (bridges_start() != 0)
        goto out;
    http_api_set_reload(http_reload);
    if (http_server_open() != 0)
        goto out;
    {
        /* Every second, as 5.0 clients choose their own session expiry;
         * a tick with nothing due costs a comparison. */
        ev_expiry = event_new(broker.base, -1, EV_PERSIST, on_expiry, NULL);
        struct timeval tv = {1, 0};
        if (!ev_expiry || event_add(ev_expiry, &tv) != 0) {
            log_error("cannot set up the session expiry timer");
            goto out;
        }
    }
    ev_term = evsignal_new(broker.base, SIGTERM, on_stop, NULL);
    ev_int = evsignal_new(broker.base, SIGINT, on_stop, NULL);
    ev_hup = evsignal_new(broker.base, SIGHUP, on_reload, NULL);
    if (!ev_term || !ev_int || !ev_hup || event_add(ev_term, NULL) || event_add(ev_int, NULL) ||
        event_add(ev_hup, NULL) || sys_topics_start() != 0) {
        log_error("cannot set up signal handlers or timers");
        goto out;
    }
    log_notice("ready (data directory %s, max_packet_size %u, max_inflight %u)",
               broker.cfg.data_dir, broker.cfg.max_packet_size, broker.cfg.max_inflight);
    if (notify_ready() != 0)
        goto out;
    if (event_base_dispatch(broker.base) < 0) {
        log_error("event loop failed");
        goto out;
    }
    rc = 0;
    log_notice("stopped");

out:
    notify_stopping();
    /* The loop is not running any more: these events can go first. */
    if (ev_expiry)
        event_free(ev_expiry);
    if (ev_term)
        event_free(ev_term);
    if (ev_int)
        event_free(ev_int);
    if (ev_hup)
        event_free(ev_hup);
    broker_free();
    return rc;
}
