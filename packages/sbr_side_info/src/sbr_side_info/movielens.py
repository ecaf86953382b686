"""MovieLens-100k with genres, from the RecBole wheel on PyPI (GroupLens's terms forbid redistributing it, so it
is fetched into the local cache, never committed).

``download_movielens()`` looks up ``recbole==1.2.1`` on the PyPI simple index, downloads the wheel, checks its
sha256 against the index, and extracts ``recbole/dataset_example/ml-100k/ml-100k.{inter,item,user}``. It is the only
network access of this package and runs only when asked for: ``make sbr_side_info-fetch-movielens`` (which calls
:func:`fetch_movielens`), or a run with ``download=true``. Without either, :func:`require_movielens` refuses with one
line naming the make target and the cache folder. A copy already under ``$PAPERLAB_DATA/sbr/ml-100k`` or the cache
is used as is.
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
MAKE_TARGET = "sbr_side_info-fetch-movielens"


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


def require_movielens(download: bool = False) -> Path:
    """The folder of the atomic files; absent, it is downloaded only with ``download`` (logged as a warning),
    else a :class:`DataUnavailableError` (one line, exit 2 from the command line) says how to get it."""
    found = find_movielens()
    if found is not None:
        return found
    if not download:
        raise DataUnavailableError(
            f"MovieLens-100k not found in {movielens_dir()} (or $PAPERLAB_DATA/sbr/ml-100k): run "
            f"`make {MAKE_TARGET}` once (downloads the recbole wheel from PyPI), or pass download=true to "
            "fetch it now, or movielens=false to run without it"
        )
    return download_movielens()


def fetch_movielens(dest: Path | None = None, timeout_s: float = 120.0) -> Path:
    """The folder of the atomic files, downloaded first if absent (``make sbr_side_info-fetch-movielens``)."""
    found = find_movielens()
    if found is not None and dest is None:
        log.info("MovieLens-100k already in %s", found)
        return found
    return download_movielens(dest, timeout_s)


def download_movielens(dest: Path | None = None, timeout_s: float = 120.0) -> Path:
    """Download and extract ML-100k (see the module docstring) into ``dest`` (default: the cache); network."""
    import httpx

    dest = Path(dest) if dest is not None else movielens_dir()
    name = f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
    log.warning("NETWORK: downloading MovieLens-100k (%s from %s) into %s", name, INDEX, dest)
    index = httpx.get(INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=timeout_s)
    index.raise_for_status()
    entry = next((f for f in index.json()["files"] if f["filename"] == name), None)
    if entry is None:
        raise DataUnavailableError(f"{INDEX}: no file {name}")
    log.warning("NETWORK: downloading %s (%.1f MB)", entry["url"], entry.get("size", 0) / 1e6)
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
    log.warning("MovieLens-100k extracted to %s", dest)
    return dest
