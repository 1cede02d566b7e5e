/* daemon/where — where a JSON path ("modules.http.routes[2].status") sits
 * in the text of asyncd.json, so that every problem gets a line and a
 * column, however many problems there are. */
#ifndef ASYNCD_WHERE_H
#define ASYNCD_WHERE_H

#include <stddef.h>

/* The deepest nesting of objects and arrays asyncd.json may have.  The
 * file is parsed (and copied, compared and checked by recursive code) on
 * a fiber's stack at reload, so depth must be bounded before any of that
 * runs; real configs nest five or six levels. */
#define ASYNCD_MAX_DEPTH 32

struct asyncd_where;

/* Where in text (NUL-terminated) an object or array opens below
 * max_depth others, or (size_t)-1 if none does.  Iterative: safe on any
 * input, valid JSON or not. */
size_t asyncd_json_too_deep(const char *text, int max_depth);

/* The index of text, which jansson parsed and asyncd_json_too_deep passed;
 * NULL when out of memory (asyncd_where_find then says 1:1).  The caller
 * frees it with asyncd_where_free. */
struct asyncd_where *asyncd_where_new(const char *text);
void asyncd_where_free(struct asyncd_where *w);

/* The line and column (from 1, in bytes) of path's member key or array
 * element; of its longest prefix present when path names something absent
 * (a missing key points at the object that lacks it); 1:1 when nothing
 * matches or w is NULL. */
void asyncd_where_find(const struct asyncd_where *w, const char *path, int *line, int *col);

/* The line and column of byte offset at in text. */
void asyncd_where_offset(const char *text, size_t at, int *line, int *col);

#endif
