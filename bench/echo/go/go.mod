module asyncio/bench/echo

go 1.19
