"""Command line.

- ``python -m paperowl build SRC_DIR OUT_DIR [--outliner extractive|llm] [--llm-model M] [--llm-base-url URL]``:
  the M-Paper builder (argparse for the options, then ``conf/cli_build.yaml`` through Hydra), also the
  ``paperowl-build`` console script.
- ``python -m paperowl experiment=<build|tiny|paper> [overrides]`` / ``paperowl-run``: Hydra experiments.

Both run through :func:`paperlab.config.hydra_entry`: a data or config error is one line ``paperowl: error: ...``
and exit 2; SIGINT / SIGTERM exit 130 / 143 after saving (training resumes from ``train.checkpoint_path``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from paperlab.config import from_config, hydra_entry, require, setup_logging
from paperowl.builder import BuildConfig


def run(cfg: Any) -> None:
    from paperowl.experiments import ExperimentConfig
    from paperowl.experiments import run as run_experiment

    setup_logging()
    run_experiment(from_config(ExperimentConfig, cfg.experiment, "experiment"))


@dataclass
class BuildCommand:
    """``conf/cli_build.yaml``: where the papers are, where the data goes, the builder's settings."""

    src: str | None = None
    out: str | None = None
    build: BuildConfig = field(default_factory=BuildConfig)

    def __post_init__(self) -> None:
        require(bool(self.src), "src", self.src, "a paper folder or a folder of paper folders")
        require(bool(self.out), "out", self.out, "an output folder")


def run_build_command(cfg: Any) -> None:
    """``paperowl build``: build M-Paper-style data, print the counts."""
    from paperowl.builder import build

    setup_logging()
    command = from_config(BuildCommand, cfg)
    summary = build(command.src, command.out, command.build)
    print(
        json.dumps(
            {k: summary[k] for k in ("tasks", "task_types", "samples", "diagrams", "images")}, indent=1
        )
    )
    print(f"{len(summary['warnings'])} warning(s); see {command.out}/warnings.txt", file=sys.stderr)
    if summary["tables_fix"] and summary["tables_unrendered"]:
        from paperowl.builder import unrendered_message

        print(unrendered_message(summary["tables_unrendered"]), file=sys.stderr)


def _quote(value: str) -> str:
    """A Hydra override value that keeps any path as written (quoted; a quote inside escaped)."""
    return "'" + value.replace("'", "\\'") + "'"


def build_overrides(argv: list[str] | None = None) -> list[str]:
    """The command's options as overrides of ``conf/cli_build.yaml`` (argparse: ``--help``, usage errors)."""
    parser = argparse.ArgumentParser(
        prog="paperowl build",
        description="paperowl build SRC_DIR OUT_DIR: parse every paper under SRC_DIR, write M-Paper-style data "
        "to OUT_DIR.",
    )
    parser.add_argument(
        "src", help="a paper folder (with main.tex/paper.tex/ms.tex) or a folder of paper folders"
    )
    parser.add_argument("out", help="output folder (imgs/, sft/*.jsonl, meta/, summary.json, warnings.txt)")
    parser.add_argument("--outliner", choices=("extractive", "llm"), default="extractive")
    parser.add_argument("--llm-model", help="hub name/path, or the served model name with --llm-base-url")
    parser.add_argument("--llm-base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    parser.add_argument("--min-paragraph-words", type=int, default=20)
    parser.add_argument("--max-diagrams", type=int, default=4)
    parser.add_argument("--no-render-tables", action="store_true", help="keep tables as LaTeX code only")
    args = parser.parse_args(argv)
    overrides = [
        f"src={_quote(args.src)}",
        f"out={_quote(args.out)}",
        f"build.min_paragraph_words={args.min_paragraph_words}",
        f"build.max_diagrams={args.max_diagrams}",
        f"build.render_tables={str(not args.no_render_tables).lower()}",
        f"build.outliner={args.outliner}",
    ]
    if args.outliner == "llm":
        if not args.llm_model:
            parser.error("--outliner llm needs --llm-model")
        overrides.append(f"+build.outliner_options.model={_quote(args.llm_model)}")
        if args.llm_base_url:
            overrides.append(f"+build.outliner_options.base_url={_quote(args.llm_base_url)}")
    # the summary goes to stdout as JSON: logs to stderr (paperlab.config.setup_logging), not Hydra's stdout
    return [*overrides, "hydra/job_logging=none"]


_hydra_main = hydra_entry("paperowl", run)
_build_main = hydra_entry("paperowl", run_build_command, config_name="cli_build")


def build_main(argv: list[str] | None = None) -> None:
    """``paperowl build SRC_DIR OUT_DIR [options]`` (the ``paperowl-build`` console script)."""
    overrides = build_overrides(sys.argv[1:] if argv is None else argv)
    sys.argv = [sys.argv[0], *overrides]
    _build_main()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "build":
        build_main(sys.argv[2:])
    else:
        _hydra_main()
