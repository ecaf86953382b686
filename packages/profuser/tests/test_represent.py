"""Stored representations: cross-tokenizer rows, selection, fusion with one source, resume and bad input."""

import numpy as np
import pytest

from paperlab.models import tiny_causal_lm, train_tiny_tokenizer
from profuser.advantage import fuse, inference_mode_choice, training_mode_choice
from profuser.represent import (
    ModelSide,
    RepresentationError,
    RepresentationStore,
    Sample,
    check_same_samples,
)

TEXTS = ["add 1 2 = 3", "rev abc = cba", "how to make a kite = first get the kite parts ."] * 3
SAMPLES = [
    Sample(f"s{i}", p, r)
    for i, (p, r) in enumerate(
        [
            ("add 1 2 =", " 3"),
            ("rev abc =", " cba"),
            ("how to make a kite =", " first get the kite parts ."),
            ("add 4 4 =", " 8"),
            ("copy fed =", " fed"),
        ]
    )
]


@pytest.fixture(scope="module")
def sides():
    t_tok = train_tiny_tokenizer(TEXTS, vocab_size=330)
    s_tok = train_tiny_tokenizer(TEXTS, vocab_size=262)  # near byte level: splits what the target merges
    target = ModelSide("target", tiny_causal_lm(tokenizer=t_tok, seed=0), t_tok)
    source = ModelSide("byte-source", tiny_causal_lm(tokenizer=s_tok, seed=1, family="qwen2"), s_tok)
    return source, target


def test_store_rows_are_per_target_response_token(sides, tmp_path):
    source, target = sides
    reps = (
        RepresentationStore(tmp_path / "a")
        .build(source, target, SAMPLES, k=4, shard_size=2, progress=False)
        .load()
    )
    assert list(reps) == [s.uid for s in SAMPLES]
    for s in SAMPLES:
        rep = reps[s.uid]
        n_resp = len(target.tokenizer(s.response, add_special_tokens=False)["input_ids"]) + 1  # + EOS
        assert rep.topk_ids.shape == (n_resp, 4) and rep.topk_logp.shape == (n_resp, 4)
        assert (
            len(rep.target_ids) == rep.n_prompt + n_resp
            and rep.target_ids[-1] == target.tokenizer.eos_token_id
        )
        have = (rep.topk_ids >= 0).any(1)
        assert have[0] and have[-1]  # the first response token and the EOS always have a source row
        assert (np.diff(rep.topk_logp[have].astype(np.float32), axis=1) <= 1e-3).all()  # sorted top-k
        assert rep.ce > 0


def test_an_interrupted_build_resumes_and_ends_identical(sides, tmp_path):
    source, target = sides
    full = (
        RepresentationStore(tmp_path / "full")
        .build(source, target, SAMPLES, k=3, shard_size=2, progress=False)
        .load()
    )
    store = RepresentationStore(tmp_path / "cut").build(
        source, target, SAMPLES, k=3, shard_size=2, progress=False
    )
    (tmp_path / "cut" / "shard-00001.npz").unlink()  # as if killed before the second shard was written
    info = store.manifest()
    info["complete"] = False
    (tmp_path / "cut" / "manifest.json").write_text(__import__("json").dumps(info))
    with pytest.raises(RepresentationError, match="did not finish"):
        store.load()
    again = store.build(source, target, SAMPLES, k=3, shard_size=2, progress=False).load()
    for uid, rep in full.items():
        assert np.array_equal(rep.topk_ids, again[uid].topk_ids) and rep.ce == pytest.approx(again[uid].ce)


def test_corrupt_shard_names_the_file(sides, tmp_path):
    source, target = sides
    store = RepresentationStore(tmp_path / "c").build(source, target, SAMPLES[:2], k=2, progress=False)
    (tmp_path / "c" / "shard-00000.npz").write_bytes(b"not a shard")
    with pytest.raises(RepresentationError, match=r"shard-00000\.npz"):
        store.load()


def test_mismatched_sample_ids_are_refused(sides, tmp_path):
    source, target = sides
    a = RepresentationStore(tmp_path / "a").build(source, target, SAMPLES[:3], k=2, progress=False).load()
    b = RepresentationStore(tmp_path / "b").build(source, target, SAMPLES[1:4], k=2, progress=False).load()
    with pytest.raises(RepresentationError, match=r"sample ids differ between 'x' and 'y'.*s0.*s3"):
        check_same_samples({"x": a, "y": b})
    other = [Sample("s0", SAMPLES[0].prompt, " 4"), *SAMPLES[1:3]]
    c = RepresentationStore(tmp_path / "c").build(source, target, other, k=2, progress=False).load()
    with pytest.raises(RepresentationError, match=r"'s0': target token ids differ"):
        check_same_samples({"x": a, "z": c})
    assert check_same_samples({"x": a, "x2": a}) == ["s0", "s1", "s2"]


def test_fused_distribution_with_one_source_is_that_source(sides, tmp_path):
    source, target = sides
    reps = RepresentationStore(tmp_path / "a").build(source, target, SAMPLES, k=3, progress=False).load()
    for rep in reps.values():
        assert fuse([rep], int(training_mode_choice(np.array([[rep.ce]]))[0])) is rep
        assert fuse([rep], int(inference_mode_choice(np.array([[0.3]]))[0])) is rep


def test_mode_choices_on_hand_matrices():
    ce = np.array([[1.0, 0.2, 0.5], [0.3, 0.9, 0.5]])
    assert training_mode_choice(ce).tolist() == [1, 0, 0]
    rewards = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    assert inference_mode_choice(rewards).tolist() == [0, 1, 0]
    assert inference_mode_choice(rewards, tie_break=np.array([[0.9, 0, 0], [0.1, 0, 0]])).tolist() == [
        1,
        1,
        0,
    ]
    with pytest.raises(ValueError, match="sources, samples"):
        training_mode_choice(np.array([1.0, 2.0]))
