/* async_io/version.h — the version of the headers a program or module was
 * compiled against (the macros) and of the library it runs with
 * (async_version).  CMake refuses to configure when these numbers differ
 * from its project() version. */
#ifndef ASYNC_IO_VERSION_H
#define ASYNC_IO_VERSION_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASYNC_IO_VERSION_MAJOR 0
#define ASYNC_IO_VERSION_MINOR 1
#define ASYNC_IO_VERSION_PATCH 0

/* The library's version as "MAJOR.MINOR.PATCH": the one loaded at run
 * time, which may be newer than the macros above. */
ASYNC_API const char *async_version(void);

#ifdef __cplusplus
}
#endif
#endif
