"""Downloads against a real HTTP server on 127.0.0.1 (resume, checksums, errors) and safe archive unpacking."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from s2cac.datasets.download import DownloadError, DownloadSpec, download, fetch, unpack


class _Server:
    """Serves ``files`` (path -> bytes); paths in ``cut`` send half their body once, then drop the connection."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):  # noqa: N802 (http.server's name)
                path = self.path.split("?")[0]
                rng = self.headers.get("Range")
                server.requests.append((path, rng))
                if path == "/forbidden":
                    self.send_error(403, "Forbidden")
                    return
                if path not in server.files:
                    self.send_error(404, "Not Found")
                    return
                data = server.files[path]
                start = 0
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if path in server.cut:
                    server.cut.discard(path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _payload(n: int = 300_000) -> bytes:
    return bytes((i * 7919) % 251 for i in range(n))


def test_interrupted_transfer_resumes_on_rerun(server, tmp_path):
    data = _payload()
    server.files["/d/scan.bin"] = data
    server.cut.add("/d/scan.bin")
    dest = tmp_path / "scan.bin"
    with pytest.raises(DownloadError, match="rerun to resume"):
        download(server.url("/d/scan.bin"), dest, _sha(data), retries=0, progress=False)
    part = tmp_path / "scan.bin.part"
    assert not dest.exists() and part.stat().st_size == len(data) // 2
    download(server.url("/d/scan.bin"), dest, _sha(data), progress=False)
    assert dest.read_bytes() == data and not part.exists()
    assert server.requests[-1] == ("/d/scan.bin", f"bytes={len(data) // 2}-")  # resumed, not restarted


def test_broken_transfer_is_retried_within_one_call(server, tmp_path, capsys):
    data = _payload()
    server.files["/scan.bin"] = data
    server.cut.add("/scan.bin")
    dest = download(server.url("/scan.bin"), tmp_path / "scan.bin", _sha(data), retries=1, retry_wait_s=0)
    assert dest.read_bytes() == data
    assert [r[1] for r in server.requests] == [None, f"bytes={len(data) // 2}-"]
    assert "[download] scan.bin:" in capsys.readouterr().err  # the progress line


def test_wrong_checksum_removes_the_data(server, tmp_path):
    server.files["/a.bin"] = b"x" * 1000
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="sha256 mismatch for a.bin"):
        download(server.url("/a.bin"), dest, "0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_verified_not_refetched(server, tmp_path):
    data = b"abc" * 100
    server.files["/a.bin"] = data
    dest = tmp_path / "a.bin"
    download(server.url("/a.bin"), dest, _sha(data), progress=False)
    download(server.url("/a.bin"), dest, _sha(data), progress=False)
    assert len(server.requests) == 1
    dest.write_bytes(b"tampered")
    with pytest.raises(DownloadError, match="exists but its sha256"):
        download(server.url("/a.bin"), dest, _sha(data), progress=False)


def test_http_errors_name_the_url_without_its_secret_query(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 403.*expired") as err:
        download(server.url("/forbidden?sig=SECRET"), tmp_path / "f", progress=False)
    assert "SECRET" not in str(err.value)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url("/missing.zip"), tmp_path / "m.zip", progress=False)
    with pytest.raises(DownloadError, match="64 hex digits"):
        download(server.url("/x"), tmp_path / "x", "abc", progress=False)


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_fetch_downloads_verifies_and_unpacks_once(server, tmp_path):
    archive = _tar_gz({"Gated_release_final/calcium_xml/1.xml": b"<plist/>", "Gated_release_final/readme.txt": b"hi"})
    server.files["/coca.tar.gz"] = archive
    spec = DownloadSpec.from_dict({"url": server.url("/coca.tar.gz?sig=abc"), "sha256": _sha(archive)})
    record = fetch(spec, tmp_path, progress=False)
    assert Path(record["unpacked"]) == tmp_path / "coca"
    assert (tmp_path / "coca/Gated_release_final/readme.txt").read_bytes() == b"hi"
    assert record["sha256"] == _sha(archive) and "sig=" not in record["url"]
    fetch(spec, tmp_path, progress=False)  # verified file and unpacked folder: nothing to do
    assert len(server.requests) == 1


def test_bad_archive_is_refused_and_nothing_is_left(server, tmp_path):
    server.files["/broken.zip"] = b"PK\x03\x04 this is not really a zip file" * 10
    spec = DownloadSpec.from_dict({"url": server.url("/broken.zip")})
    with pytest.raises(DownloadError, match="broken.zip: not a zip or tar archive"):
        fetch(spec, tmp_path, progress=False)
    assert not (tmp_path / "broken").exists()
    truncated = _tar_gz({f"f{i}.bin": _payload(20_000) for i in range(5)})[:-3000]
    (tmp_path / "t.tar.gz").write_bytes(truncated)
    with pytest.raises(DownloadError, match="t.tar.gz: corrupt or truncated archive"):
        unpack(tmp_path / "t.tar.gz", tmp_path / "t")
    assert not (tmp_path / "t").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".t.tmp")]


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt"])
def test_members_escaping_the_target_are_refused(tmp_path, name):
    zpath = tmp_path / "e.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("fine.txt", b"ok")
        zf.writestr(name, b"evil")
    with pytest.raises(DownloadError, match="outside the target folder"):
        unpack(zpath, tmp_path / "out" / "e")
    tpath = tmp_path / "e.tar.gz"
    tpath.write_bytes(_tar_gz({"fine.txt": b"ok", name: b"evil"}))
    with pytest.raises(DownloadError, match="outside the target folder"):
        unpack(tpath, tmp_path / "out" / "e")
    assert not (tmp_path / "out" / "e").exists() and not (tmp_path / "evil.txt").exists()


def test_links_in_archives_are_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        link = tarfile.TarInfo("data/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    (tmp_path / "l.tar").write_bytes(buf.getvalue())
    with pytest.raises(DownloadError, match="is a link"):
        unpack(tmp_path / "l.tar", tmp_path / "l")
    zpath = tmp_path / "l.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16  # a symbolic link
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DownloadError, match="symbolic link"):
        unpack(zpath, tmp_path / "lz")
    assert not (tmp_path / "l").exists() and not (tmp_path / "lz").exists()


def test_download_spec_checks_its_keys():
    with pytest.raises(ValueError, match="unknown key"):
        DownloadSpec.from_dict({"url": "https://x/y.zip", "sha": "0"})
    with pytest.raises(ValueError, match="safe file name"):
        _ = DownloadSpec.from_dict({"url": "https://x/"}).name
    assert DownloadSpec.from_dict({"url": "https://h/p/COCA%20part.zip?sig=1"}).name == "COCA part.zip"
