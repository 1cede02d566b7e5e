/* async_io.h — the whole public API of async_io. */
#ifndef ASYNC_IO_H
#define ASYNC_IO_H

#include "async_io/version.h"
#include "async_io/runtime.h"
#include "async_io/group.h"
#include "async_io/channel.h"
#include "async_io/ring.h"
#include "async_io/mutex.h"
#include "async_io/tcp.h"
#include "async_io/layer.h"
#include "async_io/blocking.h"
#include "async_io/http.h"

#endif
