"""CPU per slot taken: `async with Semaphore` (a scheduler pass even when free) vs acquire_nowait, 100k each, 3 reps,
with 20 other tasks parked (as idle long polls are) and a socket pair registered (epoll has something to poll)."""
import time, trio
N = 100_000
async def main():
    sem = trio.Semaphore(10)
    a, b = trio.socket.socketpair()
    async with trio.open_nursery() as n:
        for _ in range(20):
            n.start_soon(trio.sleep_forever)
        n.start_soon(a.recv, 1)
        await trio.sleep(0.01)
        for rep in range(3):
            t = time.process_time()
            for _ in range(N):
                async with sem:
                    pass
            with_pass = (time.process_time() - t) / N * 1e6
            t = time.process_time()
            for _ in range(N):
                await trio.lowlevel.checkpoint_if_cancelled()
                try:
                    sem.acquire_nowait()
                except trio.WouldBlock:
                    await sem.acquire()
                try:
                    pass
                finally:
                    sem.release()
            nowait = (time.process_time() - t) / N * 1e6
            print(f"rep {rep + 1}: async with {with_pass:.2f} us, acquire_nowait {nowait:.2f} us")
        n.cancel_scope.cancel()
trio.run(main)
