/* runtime/base/version.c — async_version: the library's own copy of the
 * header's numbers, so a program can tell which library it was loaded
 * with.  base/ is beneath every layer: it uses nothing of theirs. */
#include "async_io/version.h"

#define ASYNC_STR(x) #x
#define ASYNC_XSTR(x) ASYNC_STR(x)

const char *async_version(void)
{
    return ASYNC_XSTR(ASYNC_IO_VERSION_MAJOR) "." ASYNC_XSTR(ASYNC_IO_VERSION_MINOR) "." ASYNC_XSTR(
        ASYNC_IO_VERSION_PATCH);
}
