"""Which URLs the service may fetch or call, and an HTTP client that keeps to that.

The service runs inside a platform's network, so loopback and private addresses are allowed by
default (callbacks to a backend next door are normal), while link-local addresses, cloud metadata
endpoints and other addresses no user URL should reach are always refused unless
ECG_ALLOW_NETWORKS names them. ECG_DENY_NETWORKS refuses more; ECG_ALLOW_NETWORKS wins over both.

``request`` is httpx underneath, through a transport that connects to the exact address that
was checked (no second DNS lookup, so a name cannot be re-pointed between check and connect);
redirects are followed here, not by httpx, so that every hop is checked the same way.
Environment proxies are not used: a proxy would make its own lookup.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import ssl
import urllib.parse
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Union

import httpx

from ecg_ray.errors import RenderError

if TYPE_CHECKING:
    from ecg_ray.config import Settings

_Net = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
_Addr = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

# Refused whatever deny_networks says; only allow_networks can open them.
ALWAYS_DENIED = (
    "169.254.0.0/16",       # IPv4 link-local: cloud metadata (169.254.169.254) lives here
    "fe80::/10",            # IPv6 link-local
    "fd00:ec2::254/128",    # AWS metadata over IPv6
    "100.100.100.200/32",   # Alibaba Cloud metadata
    "0.0.0.0/8",            # "this network": 0.0.0.0 reaches local services on Linux
    "::/128",               # unspecified
    "224.0.0.0/4",          # IPv4 multicast
    "ff00::/8",             # IPv6 multicast
    "255.255.255.255/32",   # broadcast
)

_REDIRECTS = (301, 302, 303, 307, 308)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_USER_AGENT = "ecg-ray/0.1"
# Headers that must not follow a redirect to another host (they are meant for the first one).
_PRIVATE_HEADERS = ("authorization", "cookie", "proxy-authorization")


def _networks(cidrs: Iterable[str]) -> tuple[_Net, ...]:
    nets = []
    for c in cidrs:
        c = c.strip()
        if not c:
            continue
        try:
            nets.append(ipaddress.ip_network(c, strict=False))
        except ValueError as exc:
            raise ValueError(f"{c!r} is not a network (CIDR such as 10.0.0.0/8): {exc}") from None
    return tuple(nets)


def _split_csv(value: str) -> list[str]:
    return [p for p in value.split(",") if p.strip()]


def redact(url: str) -> str:
    """``url`` without the user:password part, for messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


class NetPolicy:
    """Allowed schemes and network addresses for URLs the service fetches or calls."""

    def __init__(self, allow: list[str] | None = None, deny: list[str] | None = None) -> None:
        self.allow = _networks(allow or [])
        self.deny = _networks(ALWAYS_DENIED) + _networks(deny or [])

    @classmethod
    def from_settings(cls, settings: Settings) -> NetPolicy:
        """The policy of ECG_ALLOW_NETWORKS / ECG_DENY_NETWORKS (ValueError names a bad entry)."""
        try:
            return cls(_split_csv(settings.allow_networks), _split_csv(settings.deny_networks))
        except ValueError as exc:
            raise ValueError(f"ECG_ALLOW_NETWORKS/ECG_DENY_NETWORKS: {exc}") from None

    def check_ip(self, ip: str) -> None:
        """Raise RenderError("forbidden_url") if ``ip`` may not be contacted."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise RenderError("forbidden_url", f"{ip!r} is not an IP address") from None
        forms: list[_Addr] = [addr]
        # ::ffff:a.b.c.d reaches the IPv4 address a.b.c.d: judge it as that address too.
        if isinstance(addr, ipaddress.IPv6Address):
            if addr.scope_id:  # fe80::1%eth0: the zone does not change which network it is in
                forms = [ipaddress.IPv6Address(str(addr).split("%", 1)[0])]
            if addr.ipv4_mapped is not None:
                forms.append(addr.ipv4_mapped)
        if any(f in net for f in forms for net in self.allow):
            return
        for f in forms:
            for net in self.deny:
                if f in net:
                    raise RenderError("forbidden_url", f"address {addr} is in a refused network ({net})")

    def check(self, url: str, schemes: tuple[str, ...] = ("http", "https")) -> list[str]:
        """Validate scheme and every resolved address; return the resolved IPs (strings). For s3:// return [].

        Raises RenderError("forbidden_url") for a refused scheme or address or a malformed URL,
        and RenderError("fetch_failed") when the host name does not resolve.
        """
        return [ip for ip, _ in self._resolve(url, schemes)]

    def _resolve(self, url: str, schemes: tuple[str, ...]) -> list[tuple[str, urllib.parse.SplitResult]]:
        if isinstance(url, str) and url[:5].lower() == "s3://" and "s3" in schemes:
            # S3 keys may hold spaces, '?', '#' and '%' literally: split as storage does, not as a URL.
            bucket, _, key = url[5:].partition("/")
            if not bucket or not key:
                raise RenderError("forbidden_url", f"{url!r} is not an s3://bucket/key URL")
            return []
        parts = _split(url)
        scheme = parts.scheme
        if not scheme:
            raise RenderError("forbidden_url", f"{redact(url)!r} is not a URL (no scheme)")
        if scheme not in schemes:
            raise RenderError("forbidden_url", f"URL scheme {scheme!r} is not allowed (allowed: {', '.join(schemes)})")
        if scheme not in ("http", "https"):
            raise RenderError("forbidden_url", f"URL scheme {scheme!r} is not supported")
        host = parts.hostname
        if not host:
            raise RenderError("forbidden_url", f"{redact(url)!r} has no host")
        port = _port(parts)
        try:
            literal: _Addr | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:  # no lookup needed, and none made
            self.check_ip(host)
            return [(host, parts)]
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise RenderError("fetch_failed", f"cannot resolve host {host!r}: {exc}") from None
        ips: list[str] = []
        for info in infos:
            ip = str(info[4][0])
            if ip not in ips:
                ips.append(ip)
        for ip in ips:  # one refused address refuses the host: we could not choose safely
            try:
                self.check_ip(ip)
            except RenderError as exc:
                raise RenderError("forbidden_url", f"host {host!r} resolves to {exc.message}") from None
        return [(ip, parts) for ip in ips]


def _split(url: str) -> urllib.parse.SplitResult:
    if not isinstance(url, str) or any(ord(c) < 0x21 or c == "\x7f" for c in url.strip()):
        raise RenderError("forbidden_url", "URL is not a string or contains spaces or control characters")
    try:
        return urllib.parse.urlsplit(url.strip())
    except ValueError as exc:
        raise RenderError("forbidden_url", f"malformed URL {redact(url)!r}: {exc}") from None


def _port(parts: urllib.parse.SplitResult) -> int:
    try:
        port = parts.port
    except ValueError:
        raise RenderError("forbidden_url", f"URL {redact(parts.geturl())!r} has an invalid port") from None
    if port == 0:
        raise RenderError("forbidden_url", f"URL {redact(parts.geturl())!r} has an invalid port")
    return port or (443 if parts.scheme == "https" else 80)


class _PinnedTransport(httpx.HTTPTransport):
    """httpx's transport, dialling only the addresses the policy checked for one origin.

    The request keeps its URL and Host header; only the address dialled changes to a checked IP,
    tried in turn (localhost may be ::1 and 127.0.0.1; the server may listen on one). For https
    the TLS name (SNI, and the certificate check) stays the URL's host (httpx's ``sni_hostname``
    request extension). One transport serves one hop: a pooled connection is never reused for
    another host that happens to share the address but not the certificate.
    """

    def __init__(self, origin: tuple[str, str, int], ips: list[str]) -> None:
        # No TLS for plain http, so no certificate store to load; https gets the system's
        # store (SSL_CERT_FILE honoured), checked against the URL's host.
        super().__init__(verify=ssl.create_default_context() if origin[0] == "https" else False,
                         trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))
        self._origin, self._ips = origin, ips

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        name = url.raw_host.decode("ascii")
        if (url.scheme, name, url.port or _DEFAULT_PORTS[url.scheme]) != self._origin:
            raise httpx.ConnectError(f"{name} was not checked by the network policy", request=request)
        last: httpx.TransportError | None = None
        for ip in self._ips:
            pinned = httpx.Request(request.method, url.copy_with(host=ip), headers=request.headers,
                                   stream=request.stream, extensions={**request.extensions, "sni_hostname": name})
            try:
                return super().handle_request(pinned)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent: the next one
                last = exc
        raise last or httpx.ConnectError("no address to connect to", request=request)


class Response:
    """An HTTP response; a context manager that closes the connection on exit.

    ``read`` raises RenderError("fetch_failed") when the connection fails mid-body, or when it
    ends before the Content-Length it declared (naming how many bytes of how many came).
    """

    def __init__(self, client: httpx.Client, resp: httpx.Response, url: str) -> None:
        self._client = client
        self._resp = resp
        self.status: int = resp.status_code
        self.reason: str = resp.reason_phrase
        self.headers: httpx.Headers = resp.headers
        self.url = url
        # raw: the bytes as sent (we ask for no content coding), so Content-Length counts them
        self._chunks = resp.iter_raw()
        self._buf = b""
        self._got = 0
        declared = resp.headers.get("Content-Length", "")
        self._declared = int(declared) if declared.strip().isdigit() else None

    def _failed(self, exc: Exception) -> RenderError:
        host = urllib.parse.urlsplit(self.url).hostname
        short = (f" after {self._got} of {self._declared} bytes"
                 if self._declared is not None and self._got < self._declared else "")
        return RenderError("fetch_failed", f"reading from {host} failed{short}: {exc}")

    def read1(self, n: int = 64 * 1024) -> bytes:
        """What arrives next, up to ``n`` bytes, after at most one wait on the socket (``read``
        waits until it has ``n`` bytes: a slow sender holds it far past any deadline)."""
        if not self._buf:
            try:
                self._buf = next(self._chunks, b"")  # one receive from the socket (at most 64 KiB)
            except (httpx.HTTPError, httpx.StreamError, OSError) as exc:
                raise self._failed(exc) from None
        out, self._buf = self._buf[:n], self._buf[n:]
        self._got += len(out)
        return out

    def read(self, n: int = -1) -> bytes:
        parts: list[bytes] = []
        want = n if n is not None and n >= 0 else None
        got = 0
        while want is None or got < want:
            chunk = self.read1(64 * 1024 if want is None else want - got)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def abort(self) -> None:
        """From another thread: end the connection now, so that a read blocked on it returns or
        fails at once (a cancel, a deadline). (Closing the response from another thread would
        not wake a read blocked in the socket; shutting the socket down does.)"""
        stream = self._resp.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # closed already
                pass

    def close(self) -> None:
        self._resp.close()
        self._client.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _send(url: str, resolved: list[tuple[str, urllib.parse.SplitResult]], method: str, body: bytes | None,
          headers: dict[str, str], timeout: float) -> Response:
    parts = resolved[0][1]
    host = parts.hostname or ""
    hdrs = dict(headers)
    if parts.username is not None and not any(k.lower() == "authorization" for k in hdrs):
        # user:pass@ in the URL means HTTP Basic auth; the pair never appears in messages.
        cred = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        hdrs["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode("ascii")
    client: httpx.Client | None = None
    try:
        target = httpx.URL(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1], fragment="").geturl())
        origin = (target.scheme, target.raw_host.decode("ascii"), _port(parts))
        # Identity coding: the body as sent, so that sizes and limits count the bytes on the wire.
        client = httpx.Client(transport=_PinnedTransport(origin, [ip for ip, _ in resolved]), trust_env=False,
                              follow_redirects=False, timeout=httpx.Timeout(timeout),
                              headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"})
        resp = client.send(client.build_request(method, target, content=body, headers=hdrs), stream=True)
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        if client is not None:
            client.close()
        raise RenderError("fetch_failed", f"request to {host} failed: {type(exc).__name__}: {exc}") from None
    return Response(client, resp, url)


def _origin(url: str) -> tuple[str, str | None, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname, _port(parts)


def request(url: str, policy: NetPolicy, *, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 30.0, max_redirects: int = 5) -> Response:
    """One HTTP(S) request pinned to a validated address; follows validated redirects (303 and 301/302 on POST become GET without body, 307/308 keep method+body).

    Every URL, the first and each redirect's Location (relative ones resolved against the current
    URL), passes ``policy.check`` before any connection. ``timeout`` is each of httpx's phase
    timeouts: each connect, each read, each write, and the wait for a connection; the whole
    transfer's deadline and throughput floor are the caller's (sources.watch.TransferWatch, which
    calls ``Response.abort``). A 3xx without Location, or any 3xx when ``max_redirects`` is 0, is
    returned as is.

    Raises RenderError("forbidden_url") for a refused URL or redirect, and
    RenderError("fetch_failed") naming the host for network errors (refused, timeout, TLS,
    malformed response), an unresolvable host, or more than ``max_redirects`` redirects.
    Authorization and Cookie headers are dropped when a redirect leaves the original host.
    """
    hdrs = dict(headers or {})
    current = url
    resolved = policy._resolve(url, ("http", "https"))
    for hop in range(max_redirects + 1):
        resp = _send(current, resolved, method, body, hdrs, timeout)
        location = resp.headers.get("Location")
        if resp.status not in _REDIRECTS or not location or max_redirects == 0:
            return resp
        resp.close()
        host = urllib.parse.urlsplit(current).hostname
        if hop == max_redirects:
            raise RenderError("fetch_failed", f"more than {max_redirects} redirects, the last from {host}")
        nxt = urllib.parse.urljoin(current, location.strip())
        try:
            nxt = urllib.parse.urlsplit(nxt)._replace(fragment="").geturl()
            resolved = policy._resolve(nxt, ("http", "https"))
        except (RenderError, ValueError) as exc:
            msg = exc.message if isinstance(exc, RenderError) else str(exc)
            code = exc.code if isinstance(exc, RenderError) else "forbidden_url"
            raise RenderError(code, f"redirect from {host} to {redact(nxt)!r}: {msg}") from None
        if resp.status == 303 or (resp.status in (301, 302) and method.upper() == "POST"):
            if method.upper() != "HEAD":
                method = "GET"
            body = None
            hdrs = {k: v for k, v in hdrs.items() if k.lower() not in ("content-type", "content-length")}
        if _origin(nxt) != _origin(current):
            hdrs = {k: v for k, v in hdrs.items() if k.lower() not in _PRIVATE_HEADERS}
        current = nxt
    raise AssertionError("unreachable")
