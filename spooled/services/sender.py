"""Outgoing HTTP for webhooks: one connection pool (httpcore, under Trio) whose connections can only reach the
addresses the SSRF guard allowed.

The guard sits where the socket is opened (httpcore's network backend): the host is resolved once, every
resolved address is checked, and the connection goes to a checked address, so a DNS answer that changes between
the check and the connect (DNS rebinding) cannot redirect it. TLS still verifies and sends SNI for the host
name. Private, loopback, link-local, shared, reserved and multicast addresses are refused unless
`allow_private` (SPOOLED_WEBHOOK_ALLOW_PRIVATE=1).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
import typing
import urllib.parse

import attrs
import httpcore
import trio

from spooled.domain import errors

USER_AGENT = "Spooled-Webhooks/1.0"
RESPONSE_BODY_LIMIT = 1024


class BlockedTarget(httpcore.ConnectError):
    """The target resolves only to addresses the SSRF guard refuses."""


def address_allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A public unicast address (IPv4-mapped IPv6 judged as the IPv4 address it carries)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse, at configuration time, a URL that is not http(s) or whose host is a literal private address (or
    `localhost`). Host names are checked again, after resolution, on every connection."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError:      # an unbalanced "[" (an IPv6 literal)
        host = None
    if not host or parts.scheme not in ("http", "https"):
        raise errors.invalid("url", "must be an http:// or https:// URL")
    if allow_private:
        return
    if host == "localhost" or host.endswith(".localhost"):
        raise errors.invalid("url", "must not point at a private or loopback address")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return
    if not address_allowed(ip):
        raise errors.invalid("url", "must not point at a private or loopback address")


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's Trio backend, connecting only to addresses `address_allowed` accepts (unless allow_private)."""

    def __init__(self, allow_private: bool):
        self._allow_private = allow_private
        self._inner = httpcore.TrioBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.AsyncNetworkStream:
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = []
        for family, _type, _proto, _name, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            if (self._allow_private or address_allowed(ip)) and str(ip) not in addresses:
                addresses.append(str(ip))
        if not addresses:
            raise BlockedTarget(f"refused: {host} resolves only to private, loopback or link-local addresses "
                                "(SPOOLED_WEBHOOK_ALLOW_PRIVATE=1 allows them)")
        last: Exception | None = None
        for address in addresses:   # the checked address itself: no second lookup
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


@attrs.frozen
class Response:
    status_code: int | None        # None: no HTTP response (refused, unreachable, timed out)
    body: str | None = None        # at most RESPONSE_BODY_LIMIT bytes of it
    error: str | None = None
    elapsed_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` (api.md "Webhooks")."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class Sender:
    def __init__(self, *, allow_private: bool, timeout_secs: float = 10.0, max_connections: int = 100):
        self.allow_private = allow_private
        self._timeout = timeout_secs
        self._pool = httpcore.AsyncConnectionPool(network_backend=GuardedBackend(allow_private),
                                                  max_connections=max_connections, keepalive_expiry=30.0,
                                                  http1=True, http2=False, retries=0)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        """POST `body` to `url`; never raises for network or HTTP failures (they are the Response's error)."""
        started = time.monotonic()
        timeout = {"connect": self._timeout, "read": self._timeout, "write": self._timeout, "pool": self._timeout}
        sent = {"User-Agent": USER_AGENT, "Content-Type": "application/json", **headers}
        try:
            with trio.fail_after(self._timeout * 2):
                async with self._pool.stream("POST", url, headers=list(sent.items()), content=body,
                                             extensions={"timeout": timeout}) as resp:
                    chunks, size = [], 0
                    async for chunk in resp.aiter_stream():
                        chunks.append(chunk)
                        size += len(chunk)
                        if size >= RESPONSE_BODY_LIMIT:
                            break
                    text = b"".join(chunks)[:RESPONSE_BODY_LIMIT].decode("utf-8", "replace")
                    return Response(resp.status, text, None if 200 <= resp.status < 300 else f"HTTP {resp.status}",
                                    _ms(started))
        except trio.TooSlowError:
            return Response(None, None, f"timed out after {self._timeout * 2:.0f}s", _ms(started))
        except httpcore.TimeoutException as exc:
            return Response(None, None, f"timed out: {type(exc).__name__}", _ms(started))
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, OSError) as exc:
            return Response(None, None, str(exc) or type(exc).__name__, _ms(started))

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self._pool.aclose()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
