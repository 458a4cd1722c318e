/*
 * notify.h - petreld and its service manager: the sd_notify protocol of
 * systemd (READY=1, STATUS=, WATCHDOG=1, STOPPING=1).  Outside a service
 * (NOTIFY_SOCKET unset), and in builds without libsystemd, these do nothing.
 */
#ifndef PETREL_NOTIFY_H
#define PETREL_NOTIFY_H

/* Call once the store is loaded and every listener is open: sends READY=1
 * with a first STATUS=, and when the manager asked for a watchdog
 * (WATCHDOG_USEC, for this process) starts a loop timer that sends
 * WATCHDOG=1 every half period, so a loop that is stuck stops the pings.
 * STATUS= (clients, sessions, queued messages) is refreshed on a timer too.
 * Returns 0, or -1 when a timer cannot be created (logged). */
int notify_ready(void);

/* Something an operator must hear of changed (the store failing): sends
 * STATUS= now rather than at the next tick. */
void notify_status(void);

/* Call when the loop has stopped and shutdown begins: STOPPING=1.  The
 * timers are stopped. */
void notify_stopping(void);

/* Frees the timers (before the event base is freed). */
void notify_close(void);

#endif
