module asyncio/tests/gobackend

go 1.19
