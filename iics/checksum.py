"""Checksums of large files, read in chunks (bounded memory), with an optional progress bar."""

from __future__ import annotations

import hashlib
import os

from tqdm import tqdm


def file_digest(path: str | os.PathLike, algorithm: str, progress: bool = False, chunk_bytes: int = 1 << 22) -> str:
    """Hex digest of a file with a hashlib algorithm ("md5", "sha256", ...)."""
    path = os.fspath(path)
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f, tqdm(
        total=os.path.getsize(path), unit="B", unit_scale=True, desc=f"{algorithm} {os.path.basename(path)}",
        disable=not progress,
    ) as bar:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()
