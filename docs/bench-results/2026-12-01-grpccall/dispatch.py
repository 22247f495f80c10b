"""CPU per call of grpclib's RecvRequest dispatch: with observe's old listener (an event + a closure per call) and
with none (the method wrapped once). `.venv/bin/python docs/bench-results/2026-12-01-grpccall/dispatch.py`"""
import asyncio, time
from grpclib.events import _DispatchServerEvents, RecvRequest, listen

class T:
    def __init__(self): self.__dispatch__ = _DispatchServerEvents()

async def handler(stream): pass

async def main():
    plain, listened = T(), T()
    async def on_request(event):
        h = event.method_func
        async def measured(stream):
            await h(stream)
        event.method_func = measured
    listen(listened, RecvRequest, on_request)
    N = 50000
    for rep in range(3):
        for name, t in (("listener", listened), ("none", plain)):
            t0 = time.process_time()
            for _ in range(N):
                await t.__dispatch__.recv_request({}, handler, method_name="/x/Y", deadline=None,
                                                  content_type="application/grpc", user_agent="ua", peer=None)
            print(rep, name, round((time.process_time() - t0) / N * 1e6, 2), "us")
asyncio.run(main())
