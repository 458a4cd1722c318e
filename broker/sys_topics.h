/*
 * sys_topics.h - the broker's statistics, published as retained messages
 * under $SYS/broker/ every sys_interval seconds.
 */
#ifndef PETREL_SYS_TOPICS_H
#define PETREL_SYS_TOPICS_H

/* Publishes once now and then every sys_interval seconds (nothing when the
 * interval is 0).  Returns 0 or -1. */
int sys_topics_start(void);
void sys_topics_stop(void);

#endif
