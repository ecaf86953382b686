"""Command line.

- ``python -m paperowl build SRC_DIR OUT_DIR [--outliner extractive|llm] [--llm-model M] [--llm-base-url URL]``:
  the M-Paper builder (argparse), also the ``paperowl-build`` console script.
- ``python -m paperowl experiment=<build|tiny|paper> [overrides]`` / ``paperowl-run``: Hydra experiments.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from paperlab.config import from_config, hydra_entry, setup_logging


def run(cfg: Any) -> None:
    from paperowl.experiments import ExperimentConfig
    from paperowl.experiments import run as run_experiment

    setup_logging()
    run_experiment(from_config(ExperimentConfig, cfg.experiment))


def build_main(argv: list[str] | None = None) -> None:
    """``paperowl build SRC_DIR OUT_DIR``: parse every paper under SRC_DIR, write M-Paper-style data to OUT_DIR."""
    from paperowl.builder import BuildConfig, build

    parser = argparse.ArgumentParser(prog="paperowl build", description=build_main.__doc__)
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
    options: dict[str, Any] = {}
    if args.outliner == "llm":
        if not args.llm_model:
            parser.error("--outliner llm needs --llm-model")
        options = {"model": args.llm_model, "base_url": args.llm_base_url}
    setup_logging()
    config = BuildConfig(
        min_paragraph_words=args.min_paragraph_words,
        max_diagrams=args.max_diagrams,
        render_tables=not args.no_render_tables,
        outliner=args.outliner,
        outliner_options=options,
    )
    summary = build(args.src, args.out, config)
    print(
        json.dumps(
            {k: summary[k] for k in ("tasks", "task_types", "samples", "diagrams", "images")}, indent=1
        )
    )
    print(f"{len(summary['warnings'])} warning(s); see {args.out}/warnings.txt", file=sys.stderr)


_hydra_main = hydra_entry("paperowl", run)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "build":
        build_main(sys.argv[2:])
    else:
        _hydra_main()
