"""Resumable, checksum-verified downloads and safe unpacking of archives (standard library only).

- :func:`download`: fetch one URL into a file. The transfer goes to ``<file>.part`` beside the target; a rerun
  after an interruption asks the server for the rest (HTTP ``Range``) and appends; the finished file is checked
  against its SHA-256 and only then renamed to its final name. A progress line is written to stderr.
- :func:`unpack`: extract a zip or tar archive (any compression tarfile reads) into a folder, refusing members
  that would land outside it (absolute paths, ``..``), links, devices and FIFOs; the folder appears complete or
  not at all.
- :func:`fetch`: both, for one entry of the config's ``dataset.download`` list.

Nothing here builds a shell command: file names never reach a shell.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import stat
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from s2cac.atomic import atomic_dir

CHUNK = 1 << 20  # bytes per read
_SHA256_HEX = frozenset("0123456789abcdef")


class DownloadError(RuntimeError):
    """A download or an archive is unusable; the message names the URL or file and the problem."""


def sha256_of(path: str | Path, chunk: int = CHUNK) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _check_sha256(value: str | None, where: str) -> str | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    if len(text) != 64 or not set(text) <= _SHA256_HEX:
        raise DownloadError(f"{where}: sha256 must be 64 hex digits, got {value!r}")
    return text


def _redact(url: str) -> str:
    """The URL without its query (signed URLs carry credentials there) for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


class _Progress:
    """One self-overwriting progress line on stderr (a plain line per update when stderr is not a terminal)."""

    def __init__(self, name: str, total: int | None, done: int, enabled: bool, every_s: float = 2.0) -> None:
        self.name, self.total, self.done, self.enabled, self.every_s = name, total, done, enabled, every_s
        self.start, self.last, self.start_done = time.monotonic(), 0.0, done
        self.tty = enabled and sys.stderr.isatty()

    def update(self, n: int, final: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < self.every_s):
            return
        self.last = now
        rate = (self.done - self.start_done) / max(now - self.start, 1e-6)
        of = f" / {_human(self.total)} ({100 * self.done / self.total:.0f}%)" if self.total else ""
        line = f"[download] {self.name}: {_human(self.done)}{of}, {_human(rate)}/s"
        end = "\n" if final or not self.tty else ""
        print(("\r" if self.tty else "") + line, end=end, file=sys.stderr, flush=True)


def _open(url: str, offset: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "s2cac-download"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (the scheme is checked by download)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the part file is already complete (or longer than the file)
            return None
        hint = " (a signed URL may have expired: request a new one)" if err.code in (401, 403) else ""
        raise DownloadError(f"{_redact(url)}: HTTP {err.code} {err.reason}{hint}") from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise DownloadError(f"{_redact(url)}: cannot connect: {getattr(err, 'reason', err)}") from err


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    *,
    progress: bool = True,
    timeout: float = 60.0,
    retries: int = 3,
    retry_wait_s: float = 2.0,
) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified, atomic).

    Args:
        url: http(s) or file URL.
        dest: the final file. ``dest`` + ``.part`` holds an unfinished transfer and is resumed.
        sha256: expected hex SHA-256; a mismatch removes the data and raises. Without it the file is only
            checked for its announced length.
        progress: write a progress line to stderr.
        timeout: seconds without data before a connection counts as broken.
        retries: reconnections (each resuming where the last stopped) after a broken transfer.
        retry_wait_s: pause before the first reconnection (doubled for each further one, at most 30 s).

    Returns:
        ``dest``. An existing ``dest`` with the right checksum is kept without a transfer.

    Raises:
        DownloadError: HTTP error, broken connection after all retries, wrong length or checksum.
    """
    dest = Path(dest)
    sha256 = _check_sha256(sha256, _redact(url))
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise DownloadError(f"{_redact(url)}: unsupported URL scheme {scheme!r} (use https, http or file)")
    if dest.is_file():
        if sha256 is None or sha256_of(dest) == sha256:
            if progress:
                print(f"[download] {dest.name}: already present{' and verified' if sha256 else ''}", file=sys.stderr)
            return dest
        raise DownloadError(
            f"{dest}: exists but its sha256 is not the expected {sha256}; remove it (or fix the checksum) and rerun"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _transfer(url, part, progress, timeout)
            break
        except _Broken as err:
            attempt += 1
            if attempt > retries:
                kept = part.stat().st_size if part.exists() else 0
                raise DownloadError(
                    f"{_redact(url)}: transfer broke {attempt} times ({err}); {kept} bytes kept in {part}, rerun to "
                    "resume"
                ) from None
            time.sleep(min(retry_wait_s * 2 ** (attempt - 1), 30.0))
    if sha256 is not None:
        got = sha256_of(part)
        if got != sha256:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{_redact(url)}: sha256 mismatch for {dest.name}: expected {sha256}, got {got} (the partial data "
                "was removed; check the checksum in the config or download again)"
            )
    os.replace(part, dest)
    return dest


class _Broken(Exception):
    """A connection broke mid-transfer (retryable)."""


def _transfer(url: str, part: Path, progress: bool, timeout: float) -> None:
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, offset, timeout)
    if response is None:  # 416 on a resume: nothing left to fetch
        return
    with response:
        status = getattr(response, "status", 200) or 200
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if offset and status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise DownloadError(f"{_redact(url)}: server answered range {content_range!r} to a resume at {offset}")
            mode = "ab"
        else:  # a fresh start, or a server that ignores Range: start over
            offset, mode = 0, "wb"
        total = offset + length if length is not None else None
        bar = _Progress(part.name[: -len(".part")], total, offset, progress)
        got = 0
        with open(part, mode) as fh:
            try:
                while block := response.read(CHUNK):
                    fh.write(block)
                    got += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as err:  # reset, timeout, IncompleteRead
                raise _Broken(str(err) or type(err).__name__) from err
        bar.update(0, final=True)
        if length is not None and got < length:
            raise _Broken(f"got {got} of {length} bytes")


# -- archives ---------------------------------------------------------------------------------------------------

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def is_archive_name(name: str) -> bool:
    """True when the file name ends like an archive :func:`unpack` reads."""
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _safe_member(archive: Path, name: str) -> PurePosixPath:
    """The member's relative path, or raise when it would leave the target folder."""
    text = name.replace("\\", "/")
    path = PurePosixPath(text)
    if not text or path.is_absolute() or (len(text) > 1 and text[1] == ":") or ".." in path.parts:
        raise DownloadError(f"{archive}: member {name!r} would be written outside the target folder; refused")
    return path


def unpack(archive: str | Path, target: str | Path) -> Path:
    """Extract a zip or tar archive into ``target`` (replaced atomically: complete or absent).

    Raises:
        DownloadError: not an archive, corrupt, or a member that is absolute, climbs out with ``..``, is a
            (sym/hard) link, a device or a FIFO. Nothing is left in ``target`` then.
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise DownloadError(f"{archive}: archive not found")
    try:
        with atomic_dir(target) as tmp:
            if zipfile.is_zipfile(archive):
                _unzip(archive, tmp)
            elif archive.name.lower().endswith(ARCHIVE_SUFFIXES[1:]) or tarfile.is_tarfile(archive):
                _untar(archive, tmp)
            else:
                raise DownloadError(f"{archive}: not a zip or tar archive (or a corrupt one)")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        if isinstance(err, DownloadError):
            raise
        raise DownloadError(f"{archive}: corrupt or truncated archive ({err})") from err
    return target


def _unzip(archive: Path, out: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _safe_member(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise DownloadError(f"{archive}: member {info.filename!r} is a symbolic link; refused")
        bad = zf.testzip()
        if bad is not None:
            raise DownloadError(f"{archive}: member {bad!r} fails its CRC check (corrupt archive)")
        for info in infos:
            zf.extract(info, out)


def _untar(archive: Path, out: Path) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()  # reads the whole index: a truncated archive fails here
        for m in members:
            _safe_member(archive, m.name)
            if m.issym() or m.islnk():
                raise DownloadError(f"{archive}: member {m.name!r} is a link (to {m.linkname!r}); refused")
            if not (m.isfile() or m.isdir()):
                raise DownloadError(f"{archive}: member {m.name!r} is a device, FIFO or other special file; refused")
        tf.extractall(out, members=members, filter="data")


# -- config entries --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadSpec:
    """One entry of ``dataset.download``: a URL, its checksum, a file name, and whether to unpack it."""

    url: str
    sha256: str | None = None
    filename: str | None = None
    unpack: bool | None = None  # None: unpack when the name looks like an archive

    @classmethod
    def from_dict(cls, entry: dict, where: str = "dataset.download") -> DownloadSpec:
        unknown = set(entry) - {"url", "sha256", "filename", "unpack"}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: url, sha256, filename, unpack")
        if not entry.get("url"):
            raise ValueError(f"{where}: url is required")
        return cls(str(entry["url"]), entry.get("sha256"), entry.get("filename"), entry.get("unpack"))

    @property
    def name(self) -> str:
        name = self.filename or PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(self.url).path)).name
        if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"{_redact(self.url)}: cannot take a safe file name from the URL; set `filename`")
        return name


def fetch(spec: DownloadSpec, root: str | Path, *, progress: bool = True) -> dict:
    """Download one entry into ``root/downloads/`` and unpack archives into ``root/``.

    The archive's folder is ``root/<archive name without suffix>``; rerunning skips a verified file and an
    existing unpacked folder.

    Returns:
        A record for the download manifest: file, bytes, sha256 and (for archives) the unpacked folder.
    """
    root = Path(root)
    name = spec.name
    path = download(spec.url, root / "downloads" / name, spec.sha256, progress=progress)
    record = {"url": _redact(spec.url), "file": str(path), "bytes": path.stat().st_size, "sha256": sha256_of(path)}
    do_unpack = is_archive_name(name) if spec.unpack is None else bool(spec.unpack)
    if do_unpack:
        lower = name.lower()
        stem = next(
            (name[: -len(s)] for s in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True) if lower.endswith(s)), name
        )
        target = root / stem
        marker = root / f".{stem}.unpacked"
        if not (target.is_dir() and marker.is_file() and marker.read_text().strip() == record["sha256"]):
            if progress:
                print(f"[download] unpacking {name} into {target}", file=sys.stderr, flush=True)
            unpack(path, target)
            marker.write_text(record["sha256"] + "\n")
        record["unpacked"] = str(target)
    return record
