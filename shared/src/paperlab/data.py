"""Where the real data lives.

Real data sits beside the repository, never inside it: ``$PAPERLAB_DATA`` if set, else ``../shared/data``
relative to the repository root. Tests that need it use the ``real_data`` fixture of
:mod:`paperlab.pytest_plugin`, which skips (or fails under ``PAPERLAB_REQUIRE_DATA=1``) when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

from paperlab.config import UserError

ENV_DATA = "PAPERLAB_DATA"
ENV_REQUIRE = "PAPERLAB_REQUIRE_DATA"
ENV_CACHE = "PAPERLAB_CACHE"


class DataUnavailableError(UserError, FileNotFoundError):
    """The real data folder (or a file in it) is absent (a :class:`~paperlab.config.UserError`: exit 2)."""


def repo_root(start: Path | None = None) -> Path | None:
    """The paperlab checkout containing ``start`` (default: the working directory, then this file).

    A checkout is recognised by a ``pyproject.toml`` beside a ``packages/`` and a ``shared/`` folder.
    Returns None when paperlab runs from an installed wheel outside any checkout.
    """
    candidates = [start] if start is not None else [Path.cwd(), Path(__file__).resolve()]
    for begin in candidates:
        for folder in [begin, *begin.parents]:
            if (
                (folder / "pyproject.toml").is_file()
                and (folder / "packages").is_dir()
                and (folder / "shared").is_dir()
            ):
                return folder
    return None


def data_root() -> Path:
    """The real-data folder: ``$PAPERLAB_DATA``, else ``<repo root>/../shared/data``.

    The path is returned whether or not it exists; use :func:`data_path` to require a file.
    """
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    if root is None:
        return (Path.cwd() / ".." / "shared" / "data").resolve()
    return (root / ".." / "shared" / "data").resolve()


def data_path(*parts: str) -> Path:
    """A path under :func:`data_root` that must exist, else :class:`DataUnavailableError`.

    The message names ``PAPERLAB_DATA`` so that a user with a fresh clone knows what to set.
    """
    path = data_root().joinpath(*parts)
    if not path.exists():
        raise DataUnavailableError(
            f"real data not found: {path} (set {ENV_DATA} to the folder holding paperlab's shared data; "
            f"default is ../shared/data beside the repository)"
        )
    return path


def require_data() -> bool:
    """True when ``PAPERLAB_REQUIRE_DATA=1``: missing real data is then an error, not a skip."""
    return os.environ.get(ENV_REQUIRE, "").strip().lower() in {"1", "true", "yes"}


def cache_root() -> Path:
    """A writable cache for derived files (preprocessed data, tiny models): ``$PAPERLAB_CACHE``,
    else ``<repo root>/.cache/paperlab``, else ``~/.cache/paperlab``."""
    env = os.environ.get(ENV_CACHE)
    if env:
        path = Path(env).expanduser()
    else:
        root = repo_root()
        path = root / ".cache" / "paperlab" if root is not None else Path.home() / ".cache" / "paperlab"
    path.mkdir(parents=True, exist_ok=True)
    return path
