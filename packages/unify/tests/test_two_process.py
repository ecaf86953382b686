"""The tiny training under two CPU processes (accelerate launch, gloo, DDP): both ranks finish, every result file
is written once and by rank 0, the weights are equal on both ranks (replica_digest inside the run) and equal to
the saved checkpoint's."""

import json

import pytest

from paperlab.testing import run_two_processes

TINY = [
    "experiment=tiny",
    "variants=[latent,unify]",
    "train.steps=6",
    "train.checkpoint_every=0",  # at the end only: every file written exactly once
    "train.stage1_steps=2",
    "train.batch_size=8",
    "data.synthetic.train_videos=32",
    "data.synthetic.test_videos=16",
    "model.width=32",
    "model.layers=2",
    "model.heads=2",
    "model.embed_dim=16",
    "scale.launch=ddp",
    "scale.num_gpus=2",
]


@pytest.mark.slow
def test_tiny_training_under_two_processes(tmp_path) -> None:
    results = tmp_path / "results"
    run = run_two_processes(["-m", "unify", *TINY], cwd=tmp_path, env={"PAPERLAB_RESULTS": str(results)})
    out = results / "unify" / "tiny"
    written = {p.resolve() for _, p in run.writes}
    for name in ("metrics.json", "results.md", "explanations.md"):
        assert (out / name).resolve() in written, name
    assert run.written_more_than_once() == [] and run.written_by_other_ranks() == []
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2

    import torch

    from paperlab.config import compose
    from paperlab.scale import weights_digest
    from unify.experiment import build_model, build_tokenizer, load_config

    cfg = load_config(compose("unify", TINY))
    tokenizer = build_tokenizer(cfg)
    for variant in ("latent", "unify"):
        (ckpt,) = out.glob(f"{variant}-*.ckpt")
        model = build_model(cfg, tokenizer)
        model.load_state_dict(torch.load(ckpt, weights_only=False)["model"])
        assert weights_digest(model) == metrics["variants"][variant]["weights_digest"], variant
