"""Diagram images: resolve ``\\includegraphics`` paths, convert PDF/PNG/JPG/EPS figures to PNG, render tables.

M-Paper stores every figure as an image and every table both as an image and as LaTeX code (arXiv 2311.18248,
Sec. 3). PDF pages are rasterised with ``pypdfium2``; PNG/JPG go through Pillow; EPS needs Ghostscript (``gs``)
and is skipped with a warning otherwise. Tables are compiled with ``pdflatex`` when it is installed
(:func:`tex_available`); without TeX they keep only their LaTeX-code form (task objects ``tablelatex``).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

log = logging.getLogger(__name__)

#: Extensions tried, in order, for a graphics path written without one (as pdflatex does).
GRAPHIC_EXTENSIONS = (".pdf", ".png", ".jpg", ".jpeg", ".eps")
TEX_MISSING = (
    "pdflatex not found: tables are kept in their LaTeX-code form only (task objects 'tablelatex'); "
    "install TeX Live (`make paperowl-tex`, Debian texlive-latex-base) to also render them as images"
)
_TABLE_DOC = r"""\documentclass[varwidth=18cm,border=4pt]{standalone}
\usepackage{booktabs,multirow,amsmath,amssymb,graphicx,xcolor}
\providecommand{\tablenotetext}[2]{}
\begin{document}
%s
\end{document}
"""


def resolve_graphic(root: Path, name: str, graphicspath: tuple[str, ...] = ()) -> Path | None:
    """The file a ``\\includegraphics{name}`` means: ``name`` relative to ``root`` or to each
    ``\\graphicspath`` entry, as written or with each of :data:`GRAPHIC_EXTENSIONS` appended."""
    name = name.strip().strip('"')
    bases = [root, *(root / p for p in graphicspath)]
    suffixes = ("",) if Path(name).suffix.lower() in GRAPHIC_EXTENSIONS else ("", *GRAPHIC_EXTENSIONS)
    for base in bases:
        for suffix in suffixes:
            candidate = base / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def load_graphic(path: Path, max_side: int = 1024, dpi: float = 100.0) -> Image.Image:
    """An RGB image of a figure file: the first page of a PDF rendered at ``dpi`` (pypdfium2), PNG/JPG via
    Pillow, EPS via Ghostscript. The longer side is limited to ``max_side`` pixels.

    Raises ``ValueError`` naming the file when it cannot be read or converted.
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".pdf":
            import pypdfium2 as pdfium

            document = pdfium.PdfDocument(str(path))
            try:
                image = document[0].render(scale=dpi / 72.0).to_pil()
            finally:
                document.close()
        elif suffix == ".eps":
            image = _eps_to_image(path, dpi)
        else:
            with Image.open(path) as opened:
                image = _flatten_alpha(opened)
    except ValueError:
        raise
    except Exception as err:
        raise ValueError(f"{path}: cannot read figure ({type(err).__name__}: {err})") from err
    image = image.convert("RGB")
    image.thumbnail((max_side, max_side))
    return image


def _flatten_alpha(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def eps_converter() -> str | None:
    """Ghostscript's executable when installed (needed for EPS figures)."""
    return shutil.which("gs")


def _eps_to_image(path: Path, dpi: float) -> Image.Image:
    gs = eps_converter()
    if gs is None:
        raise ValueError(f"{path}: EPS figure needs Ghostscript (gs), which is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "page.png"
        subprocess.run(
            [
                gs,
                "-q",
                "-dSAFER",
                "-dBATCH",
                "-dNOPAUSE",
                "-dEPSCrop",
                "-sDEVICE=png16m",
                f"-r{int(dpi)}",
                f"-sOutputFile={out}",
                str(path),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        with Image.open(out) as opened:
            return opened.convert("RGB")


def tex_available() -> bool:
    """True when ``pdflatex`` is on PATH (tables can then be rendered to images)."""
    return shutil.which("pdflatex") is not None


def render_table(latex: str, dpi: float = 150.0, timeout_s: float = 60.0) -> Image.Image | None:
    """Compile a table's LaTeX (its ``tabular`` part) in a ``standalone`` document and rasterise it.

    Returns None (with a warning) when ``pdflatex`` is missing or the table does not compile.
    """
    if not tex_available():
        return None
    import pypdfium2 as pdfium

    with tempfile.TemporaryDirectory() as tmp:
        tex = Path(tmp) / "table.tex"
        tex.write_text(_TABLE_DOC % latex, encoding="utf-8")
        result = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name],
            cwd=tmp,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
        pdf = Path(tmp) / "table.pdf"
        if result.returncode != 0 or not pdf.is_file():
            log.warning("table did not compile with pdflatex; keeping its LaTeX-code form")
            return None
        document = pdfium.PdfDocument(str(pdf))
        try:
            return document[0].render(scale=dpi / 72.0).to_pil().convert("RGB")
        finally:
            document.close()
