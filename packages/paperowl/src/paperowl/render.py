"""Diagram images: resolve ``\\includegraphics`` paths, convert PDF/PNG/JPG/EPS figures to PNG, render tables.

M-Paper stores every figure as an image and every table both as an image and as LaTeX code (arXiv 2311.18248,
Sec. 3). PDF pages are rasterised with ``pypdfium2``; PNG/JPG go through Pillow; EPS needs Ghostscript (``gs``)
and is skipped with a warning otherwise. Tables are compiled with ``pdflatex`` when it is installed
(:func:`tex_available`); without TeX they keep only their LaTeX-code form (task objects ``tablelatex``).
"""

from __future__ import annotations

import logging
import re
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
_TABLE_DOC = r"""\documentclass[varwidth=28cm,border=4pt]{standalone}
\usepackage{booktabs,multirow,amsmath,amssymb,graphicx,xcolor,array,hyperref}
\providecommand{\tablenotetext}[2]{}
\providecommand{\tablecomments}[1]{}
\providecommand{\tablerefs}[1]{}
\providecommand{\tablenum}[1]{}
\providecommand{\tablewidth}[1]{}
\providecommand{\tabletypesize}[1]{}
\providecommand{\colhead}[1]{#1}
\providecommand{\citealt}[2][]{[\detokenize{#2}]}
\providecommand{\citealp}[2][]{[\detokenize{#2}]}
\providecommand{\citet}[2][]{[\detokenize{#2}]}
\providecommand{\citep}[2][]{[\detokenize{#2}]}
\providecommand{\tablenotemark}[1]{\textsuperscript{#1}}
\providecommand{\multicolhead}[3]{\multicolumn{#1}{#2}{#3}}
\providecommand{\nodata}{\ldots}
\providecommand{\ding}[1]{\ensuremath{\ifnum#1=51 \checkmark\else\ifnum#1=52 \checkmark\else\times\fi\fi}}
\begin{document}
%s
\end{document}
"""
#: Table environments that cannot sit in a ``standalone`` box, rewritten to ``tabular`` before compiling.
_AS_TABULAR = ("deluxetable*", "deluxetable", "longtable*", "longtable", "supertabular")
_DROP_COMMANDS = ("endfirsthead", "endhead", "endfoot", "endlastfoot", "startdata", "enddata")


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


def standalone_table(latex: str) -> str:
    """A table's LaTeX made compilable in a ``standalone`` document without the journal's class: AASTeX
    ``deluxetable`` and ``longtable`` become ``tabular`` (the header from ``\\tablehead`` or the head/foot markers
    kept as ordinary rows), the float's caption and data markers dropped."""
    from paperowl.latex import match_brace

    out = latex
    for env in _AS_TABULAR:
        out = out.replace(f"\\begin{{{env}}}", "\\begin{tabular}").replace(
            f"\\end{{{env}}}", "\\end{tabular}"
        )
    # longtable: the continuation head (between \\endfirsthead and \\endhead) would repeat the first head
    out = re.sub(r"\\endfirsthead(?![A-Za-z]).*?\\endhead(?![A-Za-z])", "", out, flags=re.S)
    out = re.sub(r"\\(?:" + "|".join(_DROP_COMMANDS) + r")(?![A-Za-z])", "", out)
    for command in ("\\tablecaption", "\\caption"):
        while (at := out.find(command + "{")) >= 0:
            close = match_brace(out, at + len(command))
            if close is None:
                break
            out = out[:at] + re.sub(r"^\s*(\\\\)?", "", out[close:])  # a longtable caption ends its row
    at = out.find("\\tablehead{")
    if at >= 0:
        close = match_brace(out, at + len("\\tablehead"))
        if close is not None:
            out = out[:at] + out[at + len("\\tablehead{") : close - 1] + " \\\\ \\hline " + out[close:]
    return out


def render_table(
    latex: str, dpi: float = 150.0, timeout_s: float = 60.0, where: str = ""
) -> Image.Image | None:
    """Compile a table's LaTeX (its ``tabular`` part, or a whole ``deluxetable``/``longtable``, see
    :func:`standalone_table`) in a ``standalone`` document and rasterise it.

    Returns None when ``pdflatex`` is missing, or -- with a warning naming ``where`` (``file:line``) and TeX's first
    error -- when the table does not compile.
    """
    if not tex_available():
        return None
    import pypdfium2 as pdfium

    with tempfile.TemporaryDirectory() as tmp:
        tex = Path(tmp) / "table.tex"
        tex.write_text(_TABLE_DOC % standalone_table(latex), encoding="utf-8")
        result = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name],
            cwd=tmp,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
        pdf = Path(tmp) / "table.pdf"
        if result.returncode != 0 or not pdf.is_file():
            errors = [ln for ln in result.stdout.decode(errors="replace").splitlines() if ln.startswith("! ")]
            log.warning(
                "%stable did not compile with pdflatex (%s); keeping its LaTeX-code form",
                f"{where}: " if where else "",
                errors[0][2:] if errors else f"exit {result.returncode}",
            )
            return None
        document = pdfium.PdfDocument(str(pdf))
        try:
            return document[0].render(scale=dpi / 72.0).to_pil().convert("RGB")
        finally:
            document.close()
