/*
 * web_assets.h - the dashboard's files (broker/web/), compiled into petreld
 * by broker/web/embed.py so that nothing needs installing and nothing is
 * fetched at run time.  The HTTP listener (http_server.c) serves them.
 */
#ifndef PETREL_WEB_ASSETS_H
#define PETREL_WEB_ASSETS_H

#include <stddef.h>

struct web_asset { const char *path; const char *content_type; const unsigned char *data; size_t len; };
/* The embedded file served at `path` ("/" is index.html, "/static/app.js" ...), or NULL. */
const struct web_asset *web_asset_find(const char *path);

#endif
