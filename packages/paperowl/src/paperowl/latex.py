"""LaTeX sources: find a paper's main file, flatten ``\\input``/``\\include`` with a line map, strip comments,
collect simple macros, match braces and environments, and turn LaTeX into plain text.

M-Paper (arXiv 2311.18248, Sec. 3 "Paper collection and processing") is built by parsing the LaTeX sources of
papers. Everything here is paper-agnostic plumbing for that parser (:mod:`paperowl.parse`): every position in the
flattened text maps back to ``(file, line)`` so that warnings name where a problem is.
"""

from __future__ import annotations

import bisect
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
# pylatexenc logs every tolerated parse error at WARNING; they are expected on real papers.
logging.getLogger("pylatexenc").setLevel(logging.ERROR)

#: File names tried first when looking for a paper's main file.
MAIN_NAMES = ("main.tex", "paper.tex", "ms.tex")
_INPUT_RE = re.compile(r"\\(input|include|subfile)\s*(?:\{([^{}]*)\}|\s+([^\s{}\\]+))")
_MAX_DEPTH = 12
_MACRO_DEF_RE = re.compile(
    r"\\(?:newcommand|providecommand|DeclareRobustCommand)\*?\s*\{?\\([A-Za-z]+)\}?\s*(?:\[(\d)\])?\s*(?:\[[^\]]*\])?\s*\{"
)
_DEF_RE = re.compile(r"\\def\s*\\([A-Za-z]+)\s*\{")
#: Commands a paper's macros must never shadow: the parser relies on their meaning.
_PROTECTED = {
    "section",
    "subsection",
    "subsubsection",
    "paragraph",
    "caption",
    "label",
    "ref",
    "cref",
    "Cref",
    "autoref",
    "includegraphics",
    "begin",
    "end",
    "input",
    "include",
    "item",
    "cite",
    "citep",
    "citet",
    "subfloat",
}


@dataclass(frozen=True)
class SourceWarning:
    """A problem in a LaTeX source, located at ``file:line``."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class FlatSource:
    """A paper flattened into one string, with a map from character offsets back to ``(file, line)``.

    ``text`` has comments removed (a ``%`` not preceded by a backslash ends the line's content) and every
    ``\\input``/``\\include`` replaced by the included file's lines. ``line_origin[i]`` is the origin of the
    ``i``-th line of ``text`` (0-based), so offsets map through :meth:`where`.
    """

    root: Path
    main: Path
    text: str
    line_origin: list[tuple[str, int]]
    warnings: list[SourceWarning] = field(default_factory=list)
    _starts: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._starts = [0] + [m.end() for m in re.finditer("\n", self.text)]

    def where(self, offset: int) -> tuple[str, int]:
        """``(file relative to root, 1-based line)`` of a character offset into :attr:`text`."""
        index = bisect.bisect_right(self._starts, offset) - 1
        index = min(max(index, 0), len(self.line_origin) - 1)
        return self.line_origin[index]

    def warn(self, offset: int, message: str) -> SourceWarning:
        file, line = self.where(offset)
        warning = SourceWarning(file, line, message)
        self.warnings.append(warning)
        log.warning("%s", warning)
        return warning


def strip_comment(line: str) -> str:
    """The part of ``line`` before its first unescaped ``%`` (``\\%`` is a literal percent sign)."""
    for match in re.finditer("%", line):
        start = match.start()
        backslashes = len(line[:start]) - len(line[:start].rstrip("\\"))
        if backslashes % 2 == 0:
            return line[:start]
    return line


def find_main_file(folder: str | Path) -> Path | None:
    """The main ``.tex`` of a paper folder: ``main.tex``/``paper.tex``/``ms.tex`` if present, else the
    largest ``.tex`` with both ``\\documentclass`` and ``\\begin{document}``; None when there is none."""
    folder = Path(folder)
    for name in MAIN_NAMES:
        candidate = folder / name
        if candidate.is_file() and "\\documentclass" in _read(candidate):
            return candidate
    roots = [
        p
        for p in sorted(folder.glob("*.tex"))
        if "\\documentclass" in (t := _read(p)) and "\\begin{document}" in t
    ]
    return max(roots, key=lambda p: p.stat().st_size) if roots else None


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _resolve_input(root: Path, name: str) -> Path | None:
    name = name.strip()
    for candidate in (root / name, root / f"{name}.tex"):
        if candidate.is_file():
            return candidate
    return None


def flatten(main: str | Path, root: str | Path | None = None) -> FlatSource:
    """Read ``main`` and splice in every ``\\input``/``\\include``/``\\subfile`` recursively (paths relative to
    ``root``, default the main file's folder, as LaTeX resolves them; ``.tex`` is appended when missing).

    A missing input file is a :class:`SourceWarning` at the ``\\input`` line; the rest of the paper is kept.
    """
    main = Path(main)
    root = Path(root) if root is not None else main.parent
    lines: list[str] = []
    origin: list[tuple[str, int]] = []
    warnings: list[SourceWarning] = []

    def rel(path: Path) -> str:
        try:
            return str(path.relative_to(root))
        except ValueError:
            return str(path)

    def emit(text: str, where: tuple[str, int]) -> None:
        lines.append(text)
        origin.append(where)

    def visit(path: Path, stack: tuple[Path, ...]) -> None:
        for number, raw in enumerate(_read(path).splitlines(), start=1):
            line = strip_comment(raw)
            where = (rel(path), number)
            pos = 0
            pending = ""
            for match in _INPUT_RE.finditer(line):
                name = match.group(2) if match.group(2) is not None else match.group(3)
                pending += line[pos : match.start()]
                pos = match.end()
                target = _resolve_input(root, name)
                if target is None:
                    warning = SourceWarning(
                        where[0], number, f"\\{match.group(1)}{{{name}}}: file not found; skipped"
                    )
                    warnings.append(warning)
                    log.warning("%s", warning)
                    continue
                if target.resolve() in stack or len(stack) > _MAX_DEPTH:
                    warnings.append(
                        SourceWarning(where[0], number, f"\\{match.group(1)}{{{name}}}: recursive input")
                    )
                    continue
                emit(pending, where)
                pending = ""
                visit(target, (*stack, target.resolve()))
            emit(pending + line[pos:], where)

    visit(main, (main.resolve(),))
    flat = FlatSource(root=root, main=main, text="\n".join(lines), line_origin=origin)
    flat.warnings.extend(warnings)
    return flat


# ----------------------------------------------------------------------------------------------- braces


def match_brace(text: str, open_at: int, end: int | None = None) -> int | None:
    """Index just past the ``}`` matching the ``{`` at ``open_at`` (escaped braces ignored), or None when
    the group is not closed before ``end``."""
    stop = len(text) if end is None else end
    depth = 0
    i = open_at
    while i < stop:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def brace_balance(text: str) -> int:
    """Number of unescaped ``{`` minus ``}`` (0 for balanced text)."""
    cleaned = re.sub(r"\\.", "", text)
    return cleaned.count("{") - cleaned.count("}")


def skip_spaces_and_options(text: str, pos: int, end: int) -> int:
    """Skip whitespace, ``*`` and ``[...]`` optional arguments after a command name."""
    while pos < end:
        if text[pos].isspace() or text[pos] == "*":
            pos += 1
        elif text[pos] == "[":
            close = _match_bracket(text, pos, end)
            if close is None:
                return pos
            pos = close
        else:
            break
    return pos


def _match_bracket(text: str, open_at: int, end: int) -> int | None:
    depth = 0
    for i in range(open_at, end):
        if text[i] == "[":
            depth += 1
        elif text[i] == "]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


@dataclass(frozen=True)
class Command:
    """One ``\\name[opt]{arg}...`` occurrence: ``start`` of the backslash, ``end`` past the last argument;
    ``args`` are the brace arguments' inner texts; ``closed`` is False when a brace argument never closes."""

    name: str
    start: int
    end: int
    args: tuple[str, ...]
    optional: str | None
    closed: bool


def find_commands(
    text: str, names: str, nargs: int = 1, start: int = 0, end: int | None = None
) -> list[Command]:
    """Every ``\\<name>`` (regex alternation ``names``) in ``text[start:end]`` with up to ``nargs`` brace
    arguments. An argument that does not close within the range gives ``closed=False``."""
    stop = len(text) if end is None else end
    found = []
    for match in re.compile(rf"\\({names})(?![A-Za-z])").finditer(text, start, stop):
        pos = match.end()
        optional = None
        probe = pos
        while probe < stop and text[probe] in " \t*":
            probe += 1
        if probe < stop and text[probe] == "[":
            close = _match_bracket(text, probe, stop)
            if close is not None:
                optional = text[probe + 1 : close - 1]
        pos = skip_spaces_and_options(text, pos, stop)
        args: list[str] = []
        closed = True
        for _ in range(nargs):
            while pos < stop and text[pos] in " \t\n":
                pos += 1
            if pos >= stop or text[pos] != "{":
                break
            close = match_brace(text, pos, stop)
            if close is None:
                closed = False
                break
            args.append(text[pos + 1 : close - 1])
            pos = close
        found.append(Command(match.group(1), match.start(), pos, tuple(args), optional, closed))
    return found


@dataclass(frozen=True)
class Environment:
    """``\\begin{name}...\\end{name}``: ``start`` of ``\\begin``, ``body_start``/``body_end`` around the body,
    ``end`` past ``\\end{name}`` (None when the environment is never closed)."""

    name: str
    start: int
    body_start: int
    body_end: int | None
    end: int | None


def find_environments(
    text: str, names: str, start: int = 0, end: int | None = None, nestable: bool = True
) -> list[Environment]:
    """Outermost environments whose name matches regex ``names`` (nested ones of the same name are matched
    by depth). An unclosed one is returned with ``end=None``. With ``nestable=False`` (floats, which LaTeX
    never nests) a ``\\begin`` while another is open marks the open one as unclosed."""
    stop = len(text) if end is None else end
    pattern = re.compile(r"\\(begin|end)\s*\{(" + names + r")\}")
    out: list[Environment] = []
    stack: list[tuple[str, int, int]] = []
    for match in pattern.finditer(text, start, stop):
        kind, name = match.group(1), match.group(2)
        if kind == "begin":
            if stack and not nestable:
                name0, begin0, body0 = stack[0]
                out.append(Environment(name0, begin0, body0, None, None))
                stack.clear()
            stack.append((name, match.start(), match.end()))
        elif stack and stack[-1][0] == name:
            env_name, begin, body = stack.pop()
            if not stack:
                out.append(Environment(env_name, begin, body, match.start(), match.end()))
    if stack:
        name, begin, body = stack[0]
        out.append(Environment(name, begin, body, None, None))
    return sorted(out, key=lambda e: e.start)


# ----------------------------------------------------------------------------------------------- macros


def collect_macros(text: str) -> dict[str, tuple[int, str]]:
    """Simple macros ``name -> (n_args, body)`` from ``\\newcommand``/``\\providecommand``/``\\def`` with a
    braced body. Redefinitions (``\\renewcommand``) and macros named like structural commands are ignored."""
    macros: dict[str, tuple[int, str]] = {}
    for regex, has_args in ((_MACRO_DEF_RE, True), (_DEF_RE, False)):
        for match in regex.finditer(text):
            name = match.group(1)
            if name in _PROTECTED or "@" in name:
                continue
            close = match_brace(text, match.end() - 1)
            if close is None:
                continue
            nargs = int(match.group(2)) if has_args and match.group(2) else 0
            macros.setdefault(name, (nargs, text[match.end() : close - 1]))
    return macros


def expand_macros(text: str, macros: dict[str, tuple[int, str]], rounds: int = 3) -> str:
    """Replace uses of simple macros by their bodies (``#1``.. substituted), up to ``rounds`` levels deep."""
    if not macros:
        return text
    names = "|".join(sorted((re.escape(n) for n in macros), key=len, reverse=True))
    for _ in range(rounds):
        changed = False
        for command in reversed(find_commands(text, names, nargs=9)):
            nargs, body = macros[command.name]
            if len(command.args) < nargs or not command.closed:
                continue
            expanded = body
            for i, arg in enumerate(command.args[:nargs], start=1):
                expanded = expanded.replace(f"#{i}", arg)
            # Arguments beyond nargs were not this macro's: keep them as written.
            tail_start = command.start + len(command.name) + 1
            if nargs == 0:
                text = text[: command.start] + expanded + text[tail_start:]
            else:
                consumed = _end_of_args(text, tail_start, nargs)
                text = text[: command.start] + expanded + text[consumed:]
            changed = True
        if not changed:
            break
    return text


def _end_of_args(text: str, pos: int, nargs: int) -> int:
    for _ in range(nargs):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        close = match_brace(text, pos)
        if close is None:
            return pos
        pos = close
    return pos


# ----------------------------------------------------------------------------------------------- text

#: One-argument commands whose argument is kept as text (pylatexenc drops some of them by default).
_KEEP_ARGUMENT = (
    "texttt",
    "textsf",
    "textrm",
    "textsc",
    "textup",
    "textnormal",
    "textmd",
    "mbox",
    "hbox",
    "num",
    "url",
    "nolinkurl",
    "SI",
    "si",
    "code",
    "path",
    "nth",
)


def latex_to_text(latex: str) -> str:
    """Plain text of a LaTeX fragment with :mod:`pylatexenc` (math kept as written, citations dropped,
    whitespace collapsed). Unbalanced input is converted tolerantly."""
    from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

    # logos and \S print text (``Bib\TeX{} entries`` -> ``BibTeX entries``); \verb|...| prints its content
    cleaned = re.sub(r"\\verb\*?([^A-Za-z\s*])(.*?)\1", lambda m: m.group(2), latex)
    for macro, printed in (("LaTeXe", "LaTeX2e"), ("BibTeX", "BibTeX"), ("LaTeX", "LaTeX"), ("TeX", "TeX")):
        cleaned = re.sub(rf"\\{macro}(?![A-Za-z])(?:\{{\}})?", printed, cleaned)
    cleaned = re.sub(r"\\S(?![A-Za-z])\s*", "\u00a7", cleaned)
    # textual citations print the cited work (no bibliography here: its key, in brackets); parenthetical ones
    # are dropped, and with them a parenthesis they leave empty ("(e.g. \citealp{x})" -> nothing)
    cite = r"(?:\[[^\]]*\])*\{([^{}]*)\}"
    cleaned = re.sub(
        rf"\\(?:citet|citeauthor|citealt|Citet|Citeauthor)\*?{cite}",
        lambda m: "[" + ", ".join(k.strip() for k in m.group(1).split(",")) + "]",
        cleaned,
    )
    cleaned = re.sub(rf"\s*\\(?:cite[p]?|citealp|citeyear|parencite)\*?{cite}", "", cleaned)
    cleaned = re.sub(r"\s*\(\s*(?:(?:e\.g\.|i\.e\.|see|cf\.|see also)[,;]?\s*)?\)", "", cleaned)
    cleaned = re.sub(r"\\label\{[^{}]*\}", "", cleaned)
    cleaned = re.sub(r"\\figurename(?![A-Za-z])\s*", "Figure ", cleaned)
    cleaned = re.sub(r"\\tablename(?![A-Za-z])\s*", "Table ", cleaned)
    cleaned = re.sub(r"\\xspace(?![A-Za-z])", "", cleaned)
    db = get_default_latex_context_db()
    db.add_context_category(
        "paperowl", prepend=True, macros=[MacroTextSpec(name, "%(1)s") for name in _KEEP_ARGUMENT]
    )
    try:
        text = LatexNodes2Text(
            latex_context=db, math_mode="verbatim", strict_latex_spaces=True
        ).latex_to_text(cleaned, tolerant_parsing=True)
    except Exception:  # pylatexenc can still fail on pathological input; fall back to a crude strip
        text = re.sub(r"\\[A-Za-z]+\*?", " ", cleaned).replace("{", "").replace("}", "")
    text = re.sub(r"\s+([.,;:])", r"\1", re.sub(r"\s+", " ", text))
    return text.strip()
