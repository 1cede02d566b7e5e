module asyncio/bench/parked

go 1.19
