"""A local HTTP receiver for webhook tests (h11 over a Trio TCP listener on port 0): records every request and
answers with the statuses it is told to, optionally holding a request until released."""

from __future__ import annotations

import hashlib
import hmac
import json

import attrs
import h11
import trio


@attrs.define
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    def signature_ok(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.headers["x-spooled-timestamp"].encode() + b"." +
                                        self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("x-spooled-signature", ""))


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []        # the next answers, in order; 200 once empty
        self.hold: trio.Event | None = None  # set: requests wait for it before being answered
        self.arrived = trio.Event()          # set on every request (replaced after each wait_for)
        self.url = ""

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        task_status.started(self.url)
        await trio.serve_listeners(self._connection, listeners)

    async def wait_for(self, n: int) -> list[Received]:
        """Until `n` requests arrived in all."""
        while len(self.requests) < n:
            await self.arrived.wait()
            self.arrived = trio.Event()
        return self.requests

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = None, b""
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        conn.receive_data(data)
                        if not data and conn.their_state is not h11.DONE:
                            return
                        continue
                    if isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        body += bytes(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        return
                assert request is not None
                self.requests.append(Received(request.method.decode(), request.target.decode(),
                                              {k.decode().lower(): v.decode() for k, v in request.headers}, body))
                self.arrived.set()
                if self.hold is not None:
                    await self.hold.wait()
                status = self.statuses.pop(0) if self.statuses else 200
                payload = json.dumps({"received": len(self.requests)}).encode()
                await stream.send_all(conn.send(h11.Response(status_code=status, headers=[
                    ("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])))
                await stream.send_all(conn.send(h11.Data(data=payload)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            await stream.aclose()
