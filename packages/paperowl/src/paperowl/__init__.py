"""paperlab-paperowl: mPLUG-PaperOwl (arXiv 2311.18248) — M-Paper built from LaTeX sources, a tiny multimodal LLM
(ViT + visual abstractor + causal LM with LoRA, shape-adaptive cropping) and per-task caption metrics."""

from paperowl.builder import BuildConfig, PaperBuilder, build, find_papers, load_mpaper, split_of
from paperowl.cropping import crop_views, select_anchor
from paperowl.data import Sample, collate, encode, samples_from_jsonl
from paperowl.evaluate import most_frequent_caption, nearest_caption, score_by_task
from paperowl.latex import FlatSource, SourceWarning, find_main_file, flatten, latex_to_text
from paperowl.model import ModelConfig, PaperOwlModel, VisualAbstractor, build_tokenizer
from paperowl.outline import ExtractiveOutliner, LLMOutliner, Outline, OutlineGenerator, make_outliner
from paperowl.parse import Diagram, Paper, Paragraph, parse_paper
from paperowl.render import load_graphic, render_table, resolve_graphic, tex_available
from paperowl.train import TrainConfig, generate, train

__all__ = [
    "BuildConfig",
    "Diagram",
    "ExtractiveOutliner",
    "FlatSource",
    "LLMOutliner",
    "ModelConfig",
    "Outline",
    "OutlineGenerator",
    "Paper",
    "PaperBuilder",
    "PaperOwlModel",
    "Paragraph",
    "Sample",
    "SourceWarning",
    "TrainConfig",
    "VisualAbstractor",
    "build",
    "build_tokenizer",
    "collate",
    "crop_views",
    "encode",
    "find_main_file",
    "find_papers",
    "flatten",
    "generate",
    "latex_to_text",
    "load_graphic",
    "load_mpaper",
    "make_outliner",
    "most_frequent_caption",
    "nearest_caption",
    "parse_paper",
    "render_table",
    "resolve_graphic",
    "samples_from_jsonl",
    "score_by_task",
    "select_anchor",
    "split_of",
    "tex_available",
    "train",
]
