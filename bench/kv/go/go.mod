module asyncio/bench/kv

go 1.19
