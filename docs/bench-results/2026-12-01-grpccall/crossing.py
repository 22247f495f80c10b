"""CPU per asyncio->Trio call: trio_as_aio vs island.start_trio, in the island's draining loop (20 in flight)."""
import asyncio, time, sys
import trio, trio_asyncio
sys.path.insert(0, ".")   # run from the repo root: .venv/bin/python docs/bench-results/2026-12-01-grpccall/crossing.py
from spooled import island

N = 5000

async def work(x):
    await trio.sleep(0)
    return x

async def main():
    async with island.open_loop() as loop:
        async with trio.open_nursery() as nursery:
            async def via_aio():
                async def one(i):
                    for _ in range(N // 20):
                        await trio_asyncio.trio_as_aio(work)(i)
                await asyncio.gather(*(one(i) for i in range(20)))

            async def via_start():
                async def one(i):
                    for _ in range(N // 20):
                        await island.start_trio(loop, work, i)
                await asyncio.gather(*(one(i) for i in range(20)))
            for rep in range(3):
                for name, fn in (("trio_as_aio", via_aio), ("start_trio", via_start)):
                    t0 = time.process_time()
                    await trio_asyncio.aio_as_trio(fn)()
                    print(rep, name, round((time.process_time() - t0) / N * 1e6, 1), "us CPU per call")

trio.run(main)
