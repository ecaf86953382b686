"""Parse a flattened paper into diagrams (figure/table floats), paragraphs, sections and references.

This is M-Paper's alignment step (arXiv 2311.18248, Sec. 3): a diagram is a ``figure``/``figure*``/``table``/
``table*``/``deluxetable`` float with its caption, label(s) (subfigures included) and graphics; a paragraph
*refers* to a diagram when it contains ``\\ref``/``\\cref``/``\\Cref``/``\\autoref``/``\\subref`` of one of its
labels. A float whose LaTeX is broken (unclosed environment, unbalanced braces, caption that never closes) is
skipped with a :class:`~paperowl.latex.SourceWarning` at its ``file:line``; the rest of the paper is kept.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from paperowl.latex import (
    FlatSource,
    brace_balance,
    collect_macros,
    expand_macros,
    find_commands,
    find_environments,
    latex_to_text,
)

FLOAT_ENVS = r"figure\*?|table\*?|deluxetable\*?|wrapfigure|wraptable|longtable|sidewaysfigure|sidewaystable"
SUBFIGURE_ENVS = r"subfigure|subtable|minipage"
TABULAR_ENVS = r"tabular\*?|tabularx|tabulary|longtable|deluxetable\*?|array"
REF_COMMANDS = r"ref|eqref|cref|Cref|autoref|Autoref|subref|vref|Vref|fref|Fref|figref|tabref"
SECTION_RE = re.compile(r"\\(section|subsection|subsubsection)\*?\s*(?:\[[^\]]*\])?\s*\{")
_GRAPHICS = r"includegraphics|plotone|epsfig|epsfbox"


@dataclass
class Diagram:
    """One figure or table float. ``number`` is what LaTeX would print (``"3"``); ``labels`` holds the
    float's own label first, then subfigure labels; ``subcaptions`` maps subfigure labels to captions;
    ``graphics`` are the raw ``\\includegraphics`` names; ``latex`` is the table code (tabular) or ''."""

    id: str
    kind: str
    env: str
    number: str
    caption: str
    caption_latex: str
    labels: list[str]
    subcaptions: dict[str, str]
    graphics: list[str]
    latex: str
    file: str
    line: int


@dataclass
class Paragraph:
    """A paragraph of body text: ``text`` is plain (references printed as LaTeX would), ``refs`` the ids of
    diagrams it refers to in order of first mention, ``section`` the title of its innermost section."""

    index: int
    section: str
    text: str
    refs: list[str]
    file: str
    line: int


@dataclass
class Paper:
    """A parsed paper: diagrams in order of appearance, paragraphs, warnings as ``file:line: message``."""

    name: str
    diagrams: list[Diagram]
    paragraphs: list[Paragraph]
    sections: list[str]
    graphicspath: tuple[str, ...]
    warnings: list[str] = field(default_factory=list)
    macros: dict[str, tuple[int, str]] = field(default_factory=dict)  # the preamble's simple macros

    def to_dict(self) -> dict:
        return asdict(self)


def _graphicspath(preamble: str) -> tuple[str, ...]:
    match = re.search(r"\\graphicspath\s*\{((?:\s*\{[^{}]*\}\s*)+)\}", preamble)
    return tuple(re.findall(r"\{([^{}]*)\}", match.group(1))) if match else ()


def _split_document(text: str) -> tuple[int, int]:
    begin = re.search(r"\\begin\s*\{document\}", text)
    end = re.search(r"\\end\s*\{document\}", text)
    start = begin.end() if begin else 0
    stop = end.start() if end and end.start() > start else len(text)
    return start, stop


def _blank(text: str, start: int, end: int) -> str:
    """``text`` with ``[start, end)`` replaced by spaces, keeping newlines (offsets stay valid)."""
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def parse_paper(source: FlatSource, name: str) -> Paper:
    """Diagrams, paragraphs and sections of a flattened paper (see the module docstring)."""
    text = source.text
    start, stop = _split_document(text)
    preamble = text[:start]
    macros = collect_macros(preamble)
    diagrams: list[Diagram] = []
    counters = {"figure": 0, "table": 0}
    body = text
    envs = find_environments(text, FLOAT_ENVS, start, stop, nestable=False)
    for i, env in enumerate(envs):
        if env.end is None:
            source.warn(env.start, f"\\begin{{{env.name}}} is never closed; diagram skipped")
            body = _blank(body, env.start, envs[i + 1].start if i + 1 < len(envs) else env.body_start)
            continue
        body = _blank(body, env.start, env.end)
        kind = "table" if "table" in env.name else "figure"
        counters[kind] += 1
        diagram = _parse_float(source, env, kind, counters[kind], name, macros)
        if diagram is not None:
            diagrams.append(diagram)
    label_map = _label_map(diagrams, text, start, stop)
    for diagram in diagrams:  # captions may refer to other floats, sections or equations
        diagram.caption = latex_to_text(
            render_refs(expand_macros(diagram.caption_latex, macros), label_map)[0]
        )
    paragraphs, sections = _paragraphs(source, body, start, stop, label_map, macros)
    return Paper(
        name=name,
        diagrams=diagrams,
        paragraphs=paragraphs,
        sections=sections,
        graphicspath=_graphicspath(preamble),
        warnings=[str(w) for w in source.warnings],
        macros=macros,
    )


def _parse_float(source: FlatSource, env, kind: str, number: int, paper: str, macros) -> Diagram | None:
    text = source.text
    body_start, body_end = env.body_start, env.body_end
    file, line = source.where(env.start)
    if brace_balance(text[body_start:body_end]) != 0:
        source.warn(env.start, f"unbalanced braces in \\begin{{{env.name}}}; diagram skipped")
        return None
    subs = find_environments(text, SUBFIGURE_ENVS, body_start, body_end)
    inside_sub = [(s.start, s.end or body_end) for s in subs]

    def outside(pos: int) -> bool:
        return not any(a <= pos < b for a, b in inside_sub)

    caption_names = "caption|tablecaption"
    captions = find_commands(text, caption_names, nargs=1, start=body_start, end=body_end)
    for command in captions:
        if not command.closed or not command.args:
            source.warn(command.start, f"\\{command.name} has no closed argument; diagram skipped")
            return None
    main_caps = [c for c in captions if outside(c.start)]
    labels_all = find_commands(text, "label", nargs=1, start=body_start, end=body_end)
    main_labels = [c.args[0].strip() for c in labels_all if outside(c.start) and c.args]
    subcaptions: dict[str, str] = {}
    sub_labels: list[str] = []
    letter = 0
    for sub in subs:
        sub_end = sub.body_end or body_end
        sub_caps = find_commands(text, "caption|subcaption", nargs=1, start=sub.body_start, end=sub_end)
        sub_lab = find_commands(text, "label", nargs=1, start=sub.body_start, end=sub_end)
        if not sub_caps and not sub_lab:
            continue
        letter += 1
        for command in sub_lab:
            if command.args:
                sub_labels.append(command.args[0].strip())
                subcaptions[command.args[0].strip()] = (
                    latex_to_text(expand_macros(sub_caps[0].args[0], macros)) if sub_caps else ""
                )
    for command in find_commands(text, "subfloat|subcaptionbox", nargs=1, start=body_start, end=body_end):
        caption = (
            command.optional if command.name == "subfloat" else (command.args[0] if command.args else "")
        )
        for label in re.findall(r"\\label\{([^{}]*)\}", caption or ""):
            sub_labels.append(label.strip())
            subcaptions[label.strip()] = latex_to_text(expand_macros(caption or "", macros))
    caption_latex = main_caps[-1].args[0] if main_caps else ""
    for label in re.findall(r"\\label\{([^{}]*)\}", caption_latex):
        main_labels.append(label.strip())
    graphics = [c.args[0].strip() for c in find_commands(text, _GRAPHICS, 1, body_start, body_end) if c.args]
    table_latex = ""
    if kind == "table":
        tabulars = find_environments(text, TABULAR_ENVS, body_start, body_end)
        if env.name.startswith(("deluxetable", "longtable")):
            table_latex = text[env.start : env.end].strip()
        elif tabulars and tabulars[0].end is not None:
            table_latex = text[tabulars[0].start : tabulars[0].end].strip()
    labels = list(dict.fromkeys([*main_labels, *sub_labels]))
    diagram_id = f"{kind}{number}"
    return Diagram(
        id=diagram_id,
        kind=kind,
        env=env.name,
        number=str(number),
        caption=latex_to_text(expand_macros(caption_latex, macros)),
        caption_latex=caption_latex.strip(),
        labels=labels,
        subcaptions=subcaptions,
        graphics=graphics,
        latex=table_latex,
        file=file,
        line=line,
    )


def _label_map(diagrams: list[Diagram], text: str, start: int, stop: int) -> dict[str, tuple[str, str, str]]:
    """``label -> (diagram id or '', kind, printed number)`` for diagrams (subfigures get ``1a``) and sections."""
    out: dict[str, tuple[str, str, str]] = {}
    for diagram in diagrams:
        for i, label in enumerate(diagram.labels):
            suffix = (
                ""
                if i == 0 or label not in diagram.subcaptions
                else chr(ord("a") + list(diagram.subcaptions).index(label))
            )
            out[label] = (diagram.id, diagram.kind, diagram.number + suffix)
    # A \label refers to the last counter stepped: after a sectioning command, any \label in that section's text
    # (not only one right after the title) prints the section number, unless it belongs to a float (mapped above)
    # or to an equation-like environment (not tracked: its label stays unknown).
    counters = [0, 0, 0]
    matches = list(SECTION_RE.finditer(text, start, stop))
    for k, match in enumerate(matches):
        depth = ("section", "subsection", "subsubsection").index(match.group(1))
        counters[depth] += 1
        counters[depth + 1 :] = [0] * (2 - depth)
        end = matches[k + 1].start() if k + 1 < len(matches) else stop
        body = _MATH_ENV.sub(" ", text[match.end() : end])
        number = ".".join(str(c) for c in counters[: depth + 1])
        for label in re.findall(r"\\label\{([^{}]*)\}", body):
            out.setdefault(label.strip(), ("", "section", number))
    return out


_MATH_ENV = re.compile(
    r"\\begin\{(equation|align|gather|multline|eqnarray|figure|table|wrapfigure|deluxetable)(\*?)\}.*?"
    r"\\end\{\1\2\}",
    re.S,
)


_NAMES = {
    "figure": ("Fig.", "Figure"),
    "table": ("Tab.", "Table"),
    "section": ("Sec.", "Section"),
}


def render_refs(latex: str, label_map: dict[str, tuple[str, str, str]]) -> tuple[str, list[str]]:
    """Replace reference commands by what LaTeX prints (``\\ref`` -> ``3``, ``\\cref`` -> ``Fig. 3``,
    ``\\Cref``/``\\autoref`` -> ``Figure 3``); unknown labels print ``??``. Returns the new LaTeX and the ids of
    diagrams referred to, in order of first mention."""
    refs: list[str] = []
    pieces: list[str] = []
    pos = 0
    for command in find_commands(latex, REF_COMMANDS, nargs=1):
        if not command.args:
            continue
        printed = []
        for label in (part.strip() for part in command.args[0].split(",")):
            diagram_id, kind, number = label_map.get(label, ("", "", "??"))
            if diagram_id and diagram_id not in refs:
                refs.append(diagram_id)
            short, long = _NAMES.get(kind, ("", ""))
            if command.name in ("cref", "fref", "vref") and short:
                printed.append(f"{short} {number}")
            elif command.name in ("Cref", "autoref", "Autoref", "Fref", "Vref") and long:
                printed.append(f"{long} {number}")
            elif command.name == "eqref":
                printed.append(f"({number})")
            elif command.name == "subref" and number[-1:].isalpha():
                printed.append(f"({number[-1]})")
            else:
                printed.append(number)
        pieces.append(latex[pos : command.start] + " and ".join(printed))
        pos = command.end
    pieces.append(latex[pos:])
    return "".join(pieces), refs


def _paragraphs(source: FlatSource, body: str, start: int, stop: int, label_map, macros):
    """Split the float-free body into paragraphs at blank lines and section commands."""
    paragraphs: list[Paragraph] = []
    sections: list[str] = []
    cuts = [(m.start(), m) for m in SECTION_RE.finditer(body, start, stop)]
    boundaries = [start, *[c for c, _ in cuts], stop]
    section = ""
    for i in range(len(boundaries) - 1):
        chunk_start, chunk_end = boundaries[i], boundaries[i + 1]
        if i > 0:
            match = cuts[i - 1][1]
            title_end = _title_end(body, match.end() - 1, chunk_end)
            section = latex_to_text(expand_macros(body[match.end() : title_end - 1], macros))
            sections.append(section)
            chunk_start = title_end
        for para in re.finditer(r"(?:[^\n]|\n(?![ \t]*\n))+", body[chunk_start:chunk_end]):
            raw = para.group(0)
            if not raw.strip():
                continue
            offset = chunk_start + para.start() + (len(raw) - len(raw.lstrip()))
            latex, refs = render_refs(expand_macros(raw, macros), label_map)
            text = latex_to_text(latex)
            if not re.search(r"[A-Za-z]{2,}", text):
                continue
            file, line = source.where(offset)
            paragraphs.append(Paragraph(len(paragraphs), section, text, refs, file, line))
    return paragraphs, sections


def _title_end(text: str, open_at: int, end: int) -> int:
    from paperowl.latex import match_brace

    close = match_brace(text, open_at, end)
    return close if close is not None else open_at + 1
