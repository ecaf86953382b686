"""MovieLens-100k with genres, from the RecBole wheel on PyPI (GroupLens's terms forbid redistributing it, so it
is fetched into the local cache, never committed).

``fetch_movielens()`` looks up ``recbole==1.2.1`` on the PyPI simple index, downloads the wheel, checks its
sha256 against the index, and extracts ``recbole/dataset_example/ml-100k/ml-100k.{inter,item,user}``. A copy already
under ``$PAPERLAB_DATA/sbr/ml-100k`` or the cache is used as is.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import zipfile
from pathlib import Path

from paperlab.data import DataUnavailableError, cache_root, data_path
from paperlab.io import atomic_write_bytes

log = logging.getLogger(__name__)

RECBOLE_VERSION = "1.2.1"
FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
INDEX = "https://pypi.org/simple/recbole/"


def movielens_dir() -> Path:
    return cache_root() / "sbr" / "ml-100k"


def find_movielens() -> Path | None:
    """A folder holding the atomic files, if one exists (``$PAPERLAB_DATA/sbr/ml-100k`` first, then the cache)."""
    candidates = []
    with contextlib.suppress(DataUnavailableError):
        candidates.append(data_path("sbr", "ml-100k"))
    candidates.append(movielens_dir())
    for folder in candidates:
        if all((folder / f).is_file() for f in FILES):
            return folder
    return None


def fetch_movielens(dest: Path | None = None, timeout_s: float = 120.0) -> Path:
    """Download and extract ML-100k (see the module docstring); returns the folder."""
    found = find_movielens()
    if found is not None and dest is None:
        return found
    import httpx

    dest = Path(dest) if dest is not None else movielens_dir()
    name = f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
    index = httpx.get(INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=timeout_s)
    index.raise_for_status()
    entry = next((f for f in index.json()["files"] if f["filename"] == name), None)
    if entry is None:
        raise DataUnavailableError(f"{INDEX}: no file {name}")
    log.info("downloading %s (%.1f MB)", name, entry.get("size", 0) / 1e6)
    wheel = httpx.get(entry["url"], timeout=timeout_s, follow_redirects=True)
    wheel.raise_for_status()
    digest = hashlib.sha256(wheel.content).hexdigest()
    if digest != entry["hashes"]["sha256"]:
        raise DataUnavailableError(
            f"{name}: sha256 {digest} does not match the index ({entry['hashes']['sha256']})"
        )
    with zipfile.ZipFile(io.BytesIO(wheel.content)) as z:
        for f in FILES:
            atomic_write_bytes(dest / f, z.read(f"recbole/dataset_example/ml-100k/{f}"))
    log.info("MovieLens-100k extracted to %s", dest)
    return dest
