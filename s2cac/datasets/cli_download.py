"""``s2cac download``: fetch one file (resumable, sha256-verified) and optionally unpack it safely.

Exit codes: 0 done; 2 bad usage, HTTP error, checksum mismatch or bad archive; 130 interrupted (rerun resumes).
"""

from __future__ import annotations

import argparse

from s2cac.cli import CommandError
from s2cac.datasets.cli_common import interruptible


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="http(s) or file URL (e.g. a signed URL you obtained)")
    parser.add_argument("--out", required=True, help="the file to write (a rerun resumes from OUT.part)")
    parser.add_argument("--sha256", help="expected SHA-256 (hex); a mismatch removes the data")
    parser.add_argument("--unpack", metavar="DIR", help="then unpack the zip/tar archive into DIR (safely)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


@interruptible
def run(args: argparse.Namespace) -> int:
    from s2cac.datasets.download import DownloadError, download, sha256_of, unpack

    try:
        path = download(args.url, args.out, args.sha256, progress=not args.quiet)
        if args.unpack:
            unpack(path, args.unpack)
    except DownloadError as err:
        raise CommandError(str(err)) from None
    print(f"{path}\t{path.stat().st_size} bytes\tsha256 {sha256_of(path)}")
    return 0
