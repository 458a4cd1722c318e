/*
 * security.h - the password file and the ACL over the broker's life: read
 * before the listeners open (a broken file stops the start), read again on
 * SIGHUP (a broken file keeps the rules in force), and the password check
 * threads started and stopped with the event loop.
 */
#ifndef PETREL_SECURITY_H
#define PETREL_SECURITY_H

#include <stddef.h>

struct config;

/* Loads cfg's password_file and acl_file (either may be unset).  Returns 0,
 * or -1 with "path:line: reason" in err. */
int security_load(const struct config *cfg, char *err, size_t errlen);

/* SIGHUP: takes password_file, acl_file and allow_anonymous from `fresh`
 * (the configuration as just re-read; broker.cfg itself if it could not
 * be) and reloads both files.  A file that fails to load is logged with
 * its line and the rules in force stay; connections are never dropped.
 * The files are read and parsed on a thread (reload_files.h): the loop
 * goes on serving, and done() is called on it once the new users and
 * rules are in force (or not); log capture (log.h) is suspended
 * meanwhile.  Call it again only after done(). */
void security_reload(const struct config *fresh, void (*done)(void));

/* Starts and stops the password check threads (on broker.base). */
int security_start(void);
void security_stop(void);

#endif
