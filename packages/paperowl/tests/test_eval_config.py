"""Metrics bounds, outlines, configs (tiny and paper scale, validated without downloading) and the CLI."""

from __future__ import annotations

import json
import sys

import pytest

from paperlab.config import ConfigError, compose, from_config
from paperowl.data import Sample
from paperowl.evaluate import most_frequent_caption, score_by_task
from paperowl.experiments import ExperimentConfig
from paperowl.outline import ExtractiveOutliner, LLMOutliner, parse_outline_reply, split_sentences

REFS = [
    "a bar chart with three bars",
    "line plot rising steadily upward",
    "table listing model accuracy values",
]


def _samples(answers):
    return [Sample([], "", a, "figure_cap") for a in answers]


def test_identical_prediction_gives_the_maximum():
    scores = score_by_task(REFS, _samples(REFS))["figure_cap"]
    assert scores["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert scores["ROUGE-L"] == pytest.approx(1.0)
    assert scores["METEOR"] == pytest.approx(1.0, abs=1e-3)
    assert scores["CIDEr"] == pytest.approx(
        10.0, abs=1e-6
    )  # CIDEr's maximum (x10 scaling), no shared n-grams


def test_empty_prediction_gives_zero():
    # METEOR starts a JVM (~10 s); the empty prediction is a placeholder token that matches nothing for it too.
    scores = score_by_task(["", "", ""], _samples(REFS), ("BLEU-4", "ROUGE-L", "CIDEr"))["figure_cap"]
    assert scores == {"BLEU-4": pytest.approx(0.0, abs=1e-9), "ROUGE-L": 0.0, "CIDEr": 0.0}


def test_scores_grouped_by_task_and_prior():
    samples = [
        Sample([], "", "x y", "figure_cap"),
        Sample([], "", "x y", "table_cap"),
        Sample([], "", "z", "table_cap"),
    ]
    assert set(score_by_task(["x y", "x y", "z"], samples, ("ROUGE-L",))) == {
        "figure_cap",
        "table_cap",
        "all",
    }
    assert most_frequent_caption(samples) == "x y"
    with pytest.raises(ValueError, match="2 predictions for 3 samples"):
        score_by_task(["a", "b"], samples)


def test_sentences_and_extractive_outline():
    text = "Fig. 2 shows the loss, e.g. on CIFAR. The loss falls fast. It then plateaus near zero."
    assert split_sentences(text) == [
        "Fig. 2 shows the loss, e.g. on CIFAR.",
        "The loss falls fast.",
        "It then plateaus near zero.",
    ]
    outline = ExtractiveOutliner(simple_words=4, point_words=3, max_points=2).outline(
        text, ["Loss falls fast"]
    )
    assert outline.simple == "The loss falls fast."
    assert outline.detailed == "- Fig. 2 shows ...\n- The loss falls ..."


def test_llm_outliner_parses_endpoint_reply_and_falls_back(monkeypatch):
    from paperlab.serving import Completion, OpenAIServer

    replies = iter(
        ["Simple outline: Loss falls.\nDetailed outline:\n- falls fast\n* plateaus", "no structure"]
    )
    calls = []

    def fake_complete(self, prompts):
        calls.append((self.url, self.cfg.model))
        return [Completion(next(replies)) for _ in prompts]

    monkeypatch.setattr(OpenAIServer, "complete", fake_complete)
    outliner = LLMOutliner(model="served", base_url="http://localhost:8000/v1/")
    first = outliner.outline("The loss falls fast. It plateaus.", ["Loss"])
    assert (first.simple, first.detailed) == ("Loss falls.", "- falls fast\n- plateaus")
    assert calls[0] == ("http://localhost:8000/v1/chat/completions", "served")
    assert outliner.outline("The loss falls fast. It plateaus.", ["Loss"]).simple == "The loss falls fast."
    assert parse_outline_reply("nothing") is None


def test_the_llm_outliner_on_a_real_server_counts_failures_and_never_writes_the_key(
    openai_server, tiny_paper, tmp_path, monkeypatch
):
    """``build`` with the LLM outliner against ``transformers serve`` (paperlab's ``openai_server``): one chat
    request per outline paragraph; with one request in five failing, those outlines fall back to the extractive
    one and are counted in ``summary.json``; the API key reaches the server and no file of the build."""
    from paperowl.builder import BuildConfig, build

    secret = "sk-paperowl-test-7a6b5c"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    options = {"model": openai_server.model, "base_url": openai_server.base_url, "max_new_tokens": 8}
    config = BuildConfig(render_tables=False, outliner="llm", outliner_options={**options, "retries": 1})
    summary = build(tiny_paper, tmp_path / "out", config)
    asked = openai_server.completions()
    # one request per referring paragraph (2), each giving a simple and a detailed outline sample
    assert len(asked) == summary["tasks"]["outline"] // 2 == 2 and summary["outline_failures"] == 0
    assert all(r["path"] == "/v1/chat/completions" for r in asked)
    assert {h.get("Authorization") for h in openai_server.headers} == {f"Bearer {secret}"}
    openai_server.reset()
    openai_server.fail_prompts(1.0)  # the server fails every request now
    again = build(tiny_paper, tmp_path / "again", config)
    assert again["outline_failures"] == 2 and again["tasks"]["outline"] == 4  # fell back, kept, counted
    assert len(openai_server.completions()) == 2 * 2  # each tried twice (retries=1)
    assert all(secret not in f.read_text(errors="ignore") for f in tmp_path.rglob("*") if f.is_file())


def test_tiny_and_paper_configs_validate_without_downloading():
    tiny = from_config(ExperimentConfig, compose("paperowl", ["experiment=tiny"]).experiment)
    assert tiny.name == "tiny" and tiny.model.lm is None and tiny.model.lora_r == 8
    paper = from_config(ExperimentConfig, compose("paperowl", ["experiment=tiny_paper"]).experiment)
    assert paper.name == "paper"
    assert paper.model.num_queries == 64 and paper.model.lora_r == 8 and paper.model.lora_alpha == 32
    assert paper.model.lora_targets == ["q_proj", "v_proj"] and paper.model.lm_modules_to_save == []
    # issue 29: every part starts from the mPLUG-Owl checkpoint (train_it.sh --pretrained-ckpt), not base LLaMA
    assert paper.model.init_from == "MAGAer13/mplug-owl-llama-7b" and paper.model.lm is None
    assert paper.model.image_size == 224 and paper.model.anchors == [[2, 2]]
    assert (paper.train.batch_size, paper.train.micro_batch_size) == (256, 4)
    assert paper.train.lr == 1e-4 and paper.train.min_lr == 1e-6 and paper.train.warmup_steps == 36
    build = from_config(ExperimentConfig, compose("paperowl", ["experiment=build"]).experiment)
    assert build.build.outliner == "extractive"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("experiment.model.num_queries=0", "num_queries=0: expected a positive integer"),
        ("++experiment.build.outliner=gpt", "outliner='gpt': expected 'extractive' or 'llm'"),
        ("experiment.name=eval", "name='eval': expected one of build, tiny, paper"),
        ("+experiment.model.heads=3", "unknown field(s) ['heads']"),
        ("experiment.model.anchors=[[1,0]]", "anchors=[[1, 0]]: expected a list of [rows, cols]"),
        ("experiment.model.vision_clip_steps=-1", "vision_clip_steps=-1: expected an integer >= 0"),
    ],
)
def test_bad_config_values_name_the_field(override, message):
    cfg = compose("paperowl", ["experiment=tiny", override]).experiment
    with pytest.raises(ConfigError) as err:
        from_config(ExperimentConfig, cfg)
    assert message in str(err.value)


def test_cli_build_subcommand(tiny_paper, tmp_path, monkeypatch, capsys):
    from paperowl import cli

    monkeypatch.setattr(
        sys, "argv", ["paperowl", "build", str(tiny_paper), str(tmp_path / "out"), "--no-render-tables"]
    )
    cli.main()
    printed = json.loads(capsys.readouterr().out)
    assert printed["samples"] == 11 and printed["tasks"] == {"cap": 3, "analysis": 4, "outline": 4}
    assert (tmp_path / "out" / "summary.json").is_file()


def test_paper_experiment_path_runs_on_built_jsonl_with_tiny_overrides(tiny_paper, tmp_path, monkeypatch):
    """The paper-scale code path (builder JSONL -> training -> per-task scores), shrunk to a tiny model."""
    from paperowl.builder import BuildConfig, build
    from paperowl.experiments import run

    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    out = tmp_path / "mpaper"
    build(tiny_paper, out, BuildConfig(render_tables=False))
    overrides = [
        "experiment=tiny_paper",
        f"experiment.train_jsonl={out}/sft/3tasks.jsonl",
        f"experiment.eval_jsonl={out}/sft/cap.jsonl",
        "experiment.max_new_tokens=4",
        "experiment.metrics=[BLEU-4,CIDEr]",
        "experiment.model.init_from=null",
        "experiment.model.abstractor_ffn=128",
        "experiment.model.gradient_checkpointing=false",
        "experiment.model.image_size=32",
        "experiment.model.patch_size=8",
        "experiment.model.num_queries=4",
        "experiment.model.abstractor_dim=64",
        "experiment.model.abstractor_heads=4",
        "experiment.model.dtype=float32",
        "experiment.model.abstractor_layers=1",
        "experiment.model.max_length=512",
        "experiment.train.steps=2",
        "experiment.train.batch_size=2",
        "experiment.train.micro_batch_size=1",
        f"experiment.train.checkpoint_path={tmp_path}/state.pt",
    ]
    config = from_config(ExperimentConfig, compose("paperowl", overrides).experiment)
    metrics = run(config)
    assert metrics["train_samples"] == 11
    assert set(metrics["scores"]) == {"figure_cap", "tablelatex_cap", "all"}
    assert (tmp_path / "results" / "paperowl" / "paper" / "metrics.json").is_file()
    assert (tmp_path / "state.pt").is_file()  # the paper config checkpoints (every 1160 steps and at the end)
