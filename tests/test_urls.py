"""URL policy and the pinned HTTP client, against real HTTP(S) servers on loopback."""

from __future__ import annotations

import base64
import http.server
import json
import os
import socket
import ssl
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecg_ray.config import Settings
from ecg_ray.errors import RenderError
from ecg_ray.sources.inputs import materialize
from ecg_ray.sources.urls import NetPolicy, redact, request

# Every socket.connect in this process is recorded while a test watches: "refused without any
# connection" is then an observed fact. Audit hooks cannot be removed, so it is installed once.
# Name lookups are recorded too, to show a name is resolved once (checked) and never again.
_connects: list[object] = []
_lookups: list[object] = []
_watching = threading.Event()


def _audit(event: str, args: tuple) -> None:
    if not _watching.is_set():
        return
    if event == "socket.connect":
        _connects.append(args[1])
    elif event == "socket.getaddrinfo":
        _lookups.append(args[0])


sys.addaudithook(_audit)


@pytest.fixture
def connects() -> Iterator[list[object]]:
    _connects.clear()
    _lookups.clear()
    _watching.set()
    yield _connects
    _watching.clear()


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes: /file, /echo, /redirect?to=URL&code=N, /chain/N, /loop, /big, /huge-declared, /short."""

    hits: dict[str, int] = {}
    release = threading.Event()

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None,
              length: bool = True) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        path = url.path
        Handler.hits[path] = Handler.hits.get(path, 0) + 1
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if path == "/file":
            self._send(200, b"hello world")
        elif path == "/echo":
            self._send(200, json.dumps({
                "method": self.command, "body": body.decode(), "host": self.headers.get("Host"),
                "authorization": self.headers.get("Authorization"), "path": self.path,
            }).encode(), {"Content-Type": "application/json"})
        elif path == "/redirect":
            self._send(int(q.get("code", "302")), b"", {"Location": q["to"]})
        elif path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            if left == 0:
                self._send(200, b"end of chain")
            else:  # relative Location: resolved against the current URL
                self._send(302, b"", {"Location": f"{left - 1}"})
        elif path == "/loop":
            self._send(302, b"", {"Location": "/loop"})
        elif path == "/big":  # no Content-Length: only counting what arrives can stop it
            self._send(200, b"x" * 5000, length=False)
        elif path == "/huge-declared":  # claims a lot, then sends nothing until released
            self.send_response(200)
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            self.wfile.flush()
            Handler.release.wait(10)
        elif path == "/short":  # promises 100 bytes, sends 10
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"0123456789")
        else:
            self._send(404, b"not found")

    do_GET = do_POST = do_PUT = do_HEAD = _route


def _serve(srv: http.server.ThreadingHTTPServer) -> Iterator[str]:
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        Handler.release.set()
        srv.shutdown()
        srv.server_close()
        Handler.release.clear()


@pytest.fixture
def port() -> Iterator[int]:
    Handler.hits = {}
    yield from _serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler))


@pytest.fixture
def base(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _refused(fn, *args, **kw) -> RenderError:
    with pytest.raises(RenderError) as ei:
        fn(*args, **kw)
    assert ei.value.code == "forbidden_url", ei.value
    return ei.value


# --- the policy ------------------------------------------------------------------------------

@pytest.mark.parametrize("url,scheme", [
    ("file:///etc/passwd", "file"), ("ftp://127.0.0.1/x", "ftp"), ("gopher://127.0.0.1:70/_x", "gopher"),
    ("data:text/plain,hello", "data"), ("javascript:alert(1)", "javascript"),
])
def test_other_schemes_are_refused(url, scheme, connects):
    err = _refused(NetPolicy().check, url)
    assert repr(scheme) in err.message
    _refused(request, url, NetPolicy())
    assert connects == []


def test_s3_only_where_asked():
    _refused(NetPolicy().check, "s3://bucket/key.mp4")
    assert NetPolicy().check("s3://bucket/key.mp4", schemes=("http", "https", "s3")) == []
    assert NetPolicy().check("s3://bucket/my clip #2.mp4", schemes=("s3",)) == []  # keys are literal
    _refused(NetPolicy().check, "s3:///nokey", schemes=("s3",))
    _refused(NetPolicy().check, "s3://bucket", schemes=("s3",))


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://[::ffff:169.254.169.254]/",
    "http://0.0.0.0:8080/", "http://[::]/", "http://[fd00:ec2::254]/", "http://100.100.100.200/",
    "http://224.0.0.1/", "http://[ff02::1]/", "http://255.255.255.255/", "https://169.254.1.1/",
    "http://[::ffff:0.0.0.0]/",
])
def test_link_local_and_metadata_literals_are_refused_without_connecting(url, connects):
    err = _refused(request, url, NetPolicy())
    assert "refused network" in err.message
    assert connects == []


@pytest.mark.parametrize("url", [
    "http://2852039166/", "http://0xA9FEA9FE/", "http://0251.0376.0251.0376/", "http://169.254.43518/",
])
def test_numeric_tricks_resolve_to_metadata_and_are_refused(url, connects):
    err = _refused(request, url, NetPolicy())
    assert "169.254.169.254" in err.message and urllib.parse.urlsplit(url).hostname in err.message.lower()
    assert connects == []


def test_loopback_and_private_are_allowed_by_default():
    p = NetPolicy()
    assert p.check("http://127.0.0.1:1/") == ["127.0.0.1"]
    assert p.check("http://10.1.2.3/x") == ["10.1.2.3"]
    assert p.check("https://[fd12::1]/") == ["fd12::1"]
    assert "127.0.0.1" in p.check("http://localhost/")
    p.check_ip("100.100.100.201")  # next to the Alibaba metadata address, not it


def test_deny_and_allow_networks():
    deny = NetPolicy(deny=["127.0.0.0/8", "::1/128"])
    err = _refused(deny.check, "http://localhost:8080/")
    assert "'localhost'" in err.message and "127.0.0.1" in err.message
    _refused(deny.check_ip, "::ffff:127.0.0.1")  # the mapped form is the same address
    _refused(NetPolicy(deny=["10.0.0.0/8"]).check, "http://10.9.9.9/")
    opened = NetPolicy(allow=["169.254.169.254/32", "127.0.0.1/32"], deny=["127.0.0.0/8"])
    assert opened.check("http://169.254.169.254/") == ["169.254.169.254"]
    opened.check_ip("::ffff:169.254.169.254")
    assert opened.check("http://localhost/") == ["127.0.0.1"]
    _refused(opened.check_ip, "127.0.0.2")
    _refused(opened.check_ip, "169.254.169.253")


def test_policy_from_settings():
    p = NetPolicy.from_settings(Settings(allow_networks="169.254.169.254/32", deny_networks=" 127.0.0.0/8 , ::1/128,"))
    p.check_ip("169.254.169.254")
    _refused(p.check_ip, "127.0.0.1")
    _refused(p.check_ip, "::1")
    with pytest.raises(ValueError, match="not-a-cidr"):
        NetPolicy.from_settings(Settings(deny_networks="not-a-cidr"))


@pytest.mark.parametrize("url", ["http:///path", "http://127.0.0.1:99999/", "http://127.0.0.1:0/", "http://[::1/",
                                 "http://127.0.0.1/a b", "127.0.0.1/x", "http://exa\nmple.com/"])
def test_malformed_urls(url):
    _refused(NetPolicy().check, url)


def test_unresolvable_host_is_fetch_failed():
    with pytest.raises(RenderError) as ei:
        NetPolicy().check("http://no-such-host.invalid/")
    assert ei.value.code == "fetch_failed" and "no-such-host.invalid" in ei.value.message


# --- the client ------------------------------------------------------------------------------

def test_get_connects_only_to_the_checked_address_and_sends_the_url_host(port, connects):
    with request(f"http://localhost:{port}/echo?a=1", NetPolicy()) as resp:
        assert resp.status == 200 and resp.headers.get("content-type") == "application/json"
        seen = json.loads(resp.read())
    assert seen["host"] == f"localhost:{port}" and seen["path"] == "/echo?a=1" and seen["method"] == "GET"
    assert connects == [("127.0.0.1", port)]
    assert _lookups.count("localhost") == 1  # the check's lookup; the connection reuses its answer


def test_a_refused_address_is_skipped_for_the_next_checked_one(port, connects):
    # A name with two checked addresses (localhost as ::1 and 127.0.0.1; here 127.0.0.2, loopback
    # too, where nothing listens): the first refuses, the second answers, no other is tried.
    from ecg_ray.sources import urls

    url = f"http://localhost:{port}/echo"
    parts = urllib.parse.urlsplit(url)
    with urls._send(url, [("127.0.0.2", parts), ("127.0.0.1", parts)], "GET", None, {}, 5.0) as resp:
        assert json.loads(resp.read())["host"] == f"localhost:{port}"
    assert connects == [("127.0.0.2", port), ("127.0.0.1", port)]


def test_connection_refused_is_fetch_failed_naming_the_host():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    free = s.getsockname()[1]
    s.close()
    with pytest.raises(RenderError) as ei:
        request(f"http://127.0.0.1:{free}/", NetPolicy(), timeout=5)
    assert ei.value.code == "fetch_failed" and "127.0.0.1" in ei.value.message


def test_redirect_to_metadata_is_refused_without_connecting_there(base, port, connects):
    to = urllib.parse.quote("http://169.254.169.254/latest/meta-data/")
    err = _refused(request, f"{base}/redirect?to={to}", NetPolicy())
    assert "169.254.169.254" in err.message
    assert connects == [("127.0.0.1", port)]  # the first hop only


def test_redirect_to_metadata_by_decimal_name_is_refused(base, connects):
    err = _refused(request, f"{base}/redirect?to=http://2852039166/", NetPolicy())
    assert "169.254.169.254" in err.message
    assert all(a[0] == "127.0.0.1" for a in connects)


def test_redirect_to_a_file_url_is_refused(base):
    err = _refused(request, f"{base}/redirect?to=file:///etc/passwd", NetPolicy())
    assert "'file'" in err.message


def test_redirect_to_denied_loopback_name(port):
    # allowed at first by address, the redirect target is a name in a denied network
    p = NetPolicy(allow=["127.0.0.1/32"], deny=["127.0.0.0/8"])
    _refused(request, f"http://127.0.0.1:{port}/redirect?to=http://127.0.0.2:{port}/file", p)


def test_a_redirect_chain_is_followed(base):
    with request(f"{base}/chain/4", NetPolicy()) as resp:
        assert resp.status == 200 and resp.read() == b"end of chain"
        assert resp.url == f"{base}/chain/0"
    assert Handler.hits["/chain/4"] == Handler.hits["/chain/0"] == 1


def test_a_redirect_loop_stops_after_max_redirects(base):
    with pytest.raises(RenderError) as ei:
        request(f"{base}/loop", NetPolicy(), max_redirects=3)
    assert ei.value.code == "fetch_failed" and "redirects" in ei.value.message
    assert Handler.hits["/loop"] == 4  # the request and three redirects, no more


def test_max_redirects_zero_returns_the_3xx(base):
    with request(f"{base}/redirect?to=/file", NetPolicy(), max_redirects=0) as resp:
        assert resp.status == 302 and resp.headers.get("location") == "/file"
    assert "/file" not in Handler.hits


@pytest.mark.parametrize("code,method,body", [(307, "POST", "payload"), (308, "PUT", "payload"),
                                              (303, "GET", ""), (302, "GET", ""), (301, "GET", "")])
def test_post_through_redirects(base, code, method, body):
    first = "PUT" if code == 308 else "POST"
    with request(f"{base}/redirect?code={code}&to=/echo", NetPolicy(), method=first, body=b"payload",
                 headers={"Content-Type": "text/plain"}) as resp:
        seen = json.loads(resp.read())
    assert (seen["method"], seen["body"]) == (method, body)


def test_credentials_are_sent_but_never_shown(base, port):
    with request(f"http://user:s3cret@127.0.0.1:{port}/echo", NetPolicy()) as resp:
        seen = json.loads(resp.read())
    assert seen["authorization"] == "Basic " + base64.b64encode(b"user:s3cret").decode()
    err = _refused(request, f"http://user:s3cret@127.0.0.1:{port}/redirect?to=http://user:s3cret@169.254.169.254/",
                   NetPolicy())
    assert "s3cret" not in err.message
    assert redact("http://u:p@h:1/x?q") == "http://***@h:1/x?q"


def test_authorization_is_dropped_when_a_redirect_changes_host(port):
    to = urllib.parse.quote(f"http://localhost:{port}/echo")
    with request(f"http://127.0.0.1:{port}/redirect?to={to}", NetPolicy(),
                 headers={"Authorization": "Bearer t"}) as resp:
        assert json.loads(resp.read())["authorization"] is None
    with request(f"http://127.0.0.1:{port}/redirect?to=/echo", NetPolicy(), headers={"Authorization": "Bearer t"}) as resp:
        assert json.loads(resp.read())["authorization"] == "Bearer t"


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory) -> Path:
    """A self-signed certificate for `localhost` (made with `cryptography`, a moto dependency,
    so the test never depends on an openssl binary)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return d


def test_https_checks_the_certificate_against_the_url_host(tls_cert, monkeypatch):
    Handler.hits = {}
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_cert / "cert.pem", tls_cert / "key.pem")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    for p in _serve(srv):
        # not trusted: refused
        with pytest.raises(RenderError) as ei:
            request(f"https://localhost:{p}/file", NetPolicy(), timeout=5)
        assert ei.value.code == "fetch_failed" and "localhost" in ei.value.message
        # trusted, and the name matches although the socket went to 127.0.0.1
        monkeypatch.setenv("SSL_CERT_FILE", str(tls_cert / "cert.pem"))
        with request(f"https://localhost:{p}/file", NetPolicy(), timeout=5) as resp:
            assert resp.read() == b"hello world"
        # same server by address: the certificate does not name 127.0.0.1
        with pytest.raises(RenderError) as ei:
            request(f"https://127.0.0.1:{p}/file", NetPolicy(), timeout=5)
        assert ei.value.code == "fetch_failed" and "certificate" in ei.value.message.lower()


# --- materialize ------------------------------------------------------------------------------

def _settings(**kw) -> Settings:
    return Settings(**{"max_input_bytes": 1000, "fetch_timeout_s": 5.0, **kw})


def test_download(base, tmp_path):
    got = materialize(f"{base}/file", str(tmp_path), _settings())
    assert Path(got).read_bytes() == b"hello world" and Path(got).parent == tmp_path


def test_download_errors_leave_nothing(base, tmp_path):
    s = _settings()
    with pytest.raises(RenderError) as ei:
        materialize(f"{base}/missing.mp4", str(tmp_path), s)
    assert ei.value.code == "fetch_failed" and "404" in ei.value.message
    with pytest.raises(RenderError) as ei:  # streamed without a length: counted as it comes
        materialize(f"{base}/big", str(tmp_path), s)
    assert ei.value.code == "input_too_large"
    with pytest.raises(RenderError) as ei:  # declared too large: refused before reading (it never sends)
        materialize(f"{base}/huge-declared", str(tmp_path), _settings(fetch_timeout_s=3.0))
    assert ei.value.code == "input_too_large" and str(10**12) in ei.value.message
    with pytest.raises(RenderError) as ei:
        materialize(f"{base}/short", str(tmp_path), s)
    assert ei.value.code == "fetch_failed" and "10 of 100" in ei.value.message
    assert os.listdir(tmp_path) == []


def test_download_policy(base, port, tmp_path):
    e = _refused(materialize, f"{base}/redirect?to=http://169.254.169.254/", str(tmp_path), _settings())
    assert "169.254.169.254" in e.message
    _refused(materialize, f"{base}/file", str(tmp_path), _settings(deny_networks="127.0.0.0/8"))
    _refused(materialize, f"http://localhost:{port}/file", str(tmp_path), _settings(), NetPolicy(deny=["127.0.0.0/8"]))
    _refused(materialize, "ftp://127.0.0.1/clip.mp4", str(tmp_path), _settings())
    assert os.listdir(tmp_path) == []


@pytest.fixture
def dirs(tmp_path) -> dict[str, Path]:
    allowed, outside, sibling = tmp_path / "allowed", tmp_path / "outside", tmp_path / "allowed-not"
    for d in (allowed, outside, sibling):
        d.mkdir()
    (allowed / "clip.mp4").write_bytes(b"in")
    (outside / "secret.mp4").write_bytes(b"out")
    (sibling / "clip.mp4").write_bytes(b"prefix trick")
    (allowed / "link.mp4").symlink_to(outside / "secret.mp4")
    (allowed / "sub").symlink_to(outside)
    return {"allowed": allowed, "outside": outside, "sibling": sibling}


def test_local_paths_for_the_service(dirs, tmp_path):
    work = str(tmp_path)
    a, o = dirs["allowed"], dirs["outside"]
    s = _settings(local_input_dirs=f"{tmp_path / 'elsewhere'},{a}")
    assert materialize(str(a / "clip.mp4"), work, s, allow_local=False) == str((a / "clip.mp4").resolve())
    assert materialize(f"file://{a / 'clip.mp4'}", work, s, allow_local=False) == str((a / "clip.mp4").resolve())
    for bad in (o / "secret.mp4", a / "link.mp4", a / "sub" / "secret.mp4", f"{a}/../outside/secret.mp4",
                dirs["sibling"] / "clip.mp4", f"file://{o / 'secret.mp4'}", "/etc/passwd"):
        e = _refused(materialize, str(bad), work, s, allow_local=False)
        assert "outside the allowed" in e.message
    _refused(materialize, str(a / "clip.mp4"), work, _settings(), allow_local=False)  # no dirs: none
    with pytest.raises(RenderError) as ei:  # inside but missing: the usual error
        materialize(str(a / "nope.mp4"), work, s, allow_local=False)
    assert ei.value.code == "invalid_input"


def test_local_paths_for_the_cli(dirs, tmp_path):
    o = dirs["outside"] / "secret.mp4"
    assert materialize(str(o), str(tmp_path), _settings()) == str(o)
    assert materialize(f"file://{o}", str(tmp_path), _settings()) == str(o)
    _refused(materialize, f"file://otherhost{o}", str(tmp_path), _settings())


def test_s3_input_is_downloaded_through_storage(s3_server, monkeypatch, tmp_path):
    from .s3util import aws_env

    aws_env(monkeypatch)
    bucket = s3_server.create_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="in/my clip #1.mp4", Body=b"video bytes")
    s = _settings(storage="s3", s3_bucket=bucket, s3_endpoint_url=s3_server.endpoint_url)
    got = materialize(f"s3://{bucket}/in/my clip #1.mp4", str(tmp_path), s, allow_local=False)
    assert Path(got).read_bytes() == b"video bytes" and Path(got).parent == tmp_path
    assert got.endswith(".mp4")
    os.remove(got)
    with pytest.raises(RenderError) as ei:
        materialize(f"s3://{bucket}/in/missing.mp4", str(tmp_path), s)
    assert ei.value.code == "fetch_failed"
    assert os.listdir(tmp_path) == []
