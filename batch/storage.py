"""Where inputs live: local paths, or any filesystem pyarrow resolves from a URI (s3://, gs://,
hdfs://, file://...), where pyarrow was built with it. Local paths keep plain `open()`."""

from __future__ import annotations

import fnmatch
import glob
from dataclasses import dataclass
from typing import IO, Any


def is_uri(path: str) -> bool:
    return "://" in path


def open_input(path: str) -> IO[bytes] | Any:
    """A seekable binary reader (file object or pyarrow NativeFile), usable with `with`."""
    if not is_uri(path):
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    from pyarrow import fs as pafs

    filesystem, inner = pafs.FileSystem.from_uri(path)
    return filesystem.open_input_file(inner)


def first_line(path: str, limit: int = 1 << 24) -> bytes:
    """The first line with its newline (pyarrow's readers have no readline); at most `limit` bytes
    are read, so a file without newlines cannot fill memory."""
    buf = b""
    with open_input(path) as fh:
        while len(buf) <= limit:
            chunk = fh.read(1 << 16)
            if not chunk:
                return buf
            cut = chunk.find(b"\n")
            if cut >= 0:
                return buf + chunk[: cut + 1]
            buf += chunk
    raise ValueError(f"{path}: the first line is longer than {limit} bytes")


def parquet_source(path: str) -> Any:
    """What `pyarrow.parquet` should open: the path itself, or a reader for a URI."""
    return open_input(path) if is_uri(path) else path


def _glob_match(rel: str, pattern: str) -> bool:
    """fnmatch, with `**/` also matching no folder at all, as glob's recursive mode does."""
    return fnmatch.fnmatch(rel, pattern) or ("**/" in pattern and fnmatch.fnmatch(rel, pattern.replace("**/", "")))


@dataclass(frozen=True)
class RemoteFile:
    uri: str
    name: str  # relative to the folder or glob base it was found under
    size: int
    mtime_ns: int


def list_uri(raw: str) -> list[RemoteFile]:
    """A file, a folder (every file below it) or a glob, on the URI's filesystem; sorted."""
    from pyarrow import fs as pafs

    scheme = raw.split("://", 1)[0]
    magic = glob.has_magic(raw)
    base_uri = raw
    if magic:
        parts = raw.split("/")
        cut = next(i for i, part in enumerate(parts) if glob.has_magic(part))
        base_uri = "/".join(parts[:cut])
    try:
        filesystem, base = pafs.FileSystem.from_uri(base_uri)
        info = filesystem.get_file_info(base)
    except Exception as exc:  # unknown scheme, missing credentials, no such bucket...
        raise OSError(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None
    if info.type == pafs.FileType.File and not magic:
        return [RemoteFile(raw, raw.rsplit("/", 1)[-1], info.size or 0, info.mtime_ns or 0)]
    if info.type != pafs.FileType.Directory:
        return []
    pattern = raw[len(base_uri):].lstrip("/") if magic else None
    found = []
    for item in filesystem.get_file_info(pafs.FileSelector(base, recursive=True)):
        if item.type != pafs.FileType.File:
            continue
        rel = item.path[len(base):].lstrip("/")
        if pattern is not None and not _glob_match(rel, pattern):
            continue
        if pattern is None and any(p.startswith((".", "_")) for p in rel.split("/")):
            continue
        found.append(RemoteFile(f"{scheme}://{item.path}", rel, item.size or 0, item.mtime_ns or 0))
    return sorted(found, key=lambda f: f.uri)
