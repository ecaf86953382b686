"""The controller learns the oracle top-K: on held-out sequences it recovers more of it than recency or random."""

from __future__ import annotations

import pytest
import torch

from adore.controller import ControllerConfig, oracle_labels, recall_at_k, train_controller
from adore.tasks import RecallConfig, answer_accuracy, sample
from paperlab.config import ConfigError
from paperlab.models import tiny_causal_lm

TASK = RecallConfig(n_keys=16, n_values=16, n_filler=8, n_pairs=6, filler_run=3, n_queries=6)


def test_oracle_labels_by_hand() -> None:
    attn = torch.tensor([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.2, 0.7, 0.1, 0], [0.1, 0.2, 0.3, 0.4]])
    assert oracle_labels(attn, 3, 2).tolist() == [0.0, 1.0, 1.0]
    assert oracle_labels(attn, 2, 5).tolist() == [1.0, 1.0]


def test_recall_language_layout() -> None:
    ids, mask = sample(TASK, 4, seed=0)
    assert ids.shape == (4, TASK.length) and int(mask.sum()) == 4 * TASK.n_queries
    for row, m in zip(ids, mask, strict=True):
        pairs = {int(row[1 + 5 * i]): int(row[2 + 5 * i]) for i in range(TASK.n_pairs)}
        for t in torch.nonzero(m).flatten().tolist():
            assert pairs[int(row[t - 1])] == int(
                row[t]
            )  # every answer is the value paired with the asked key
    logits = torch.full((TASK.length - 1, TASK.vocab_size), -10.0)
    logits[torch.arange(TASK.length - 1), ids[0, 1:]] = 10.0
    acc, ce = answer_accuracy(logits, ids[0], mask[0])
    assert acc == 1.0 and ce < 1e-6


def test_trained_controller_beats_recency_and_random() -> None:
    torch.manual_seed(0)
    lm = tiny_causal_lm(
        vocab_size=TASK.vocab_size,
        layers=2,
        hidden=32,
        heads=4,
        max_position=64,
        attn_implementation="eager",
        seed=0,
    )
    train, _ = sample(TASK, 32, seed=1)
    held_out, _ = sample(TASK, 8, seed=2)
    controller = train_controller(lm, train, ControllerConfig(dim=32, sequences=32, epochs=2), progress=False)
    g = torch.Generator().manual_seed(0)
    learned = recall_at_k(lambda p, i, t: controller.score(p, i, t, "rebuild"), lm, held_out, 4)
    recency = recall_at_k(lambda p, i, t: p.float(), lm, held_out, 4)
    rand = recall_at_k(lambda p, i, t: torch.rand(p.numel(), generator=g), lm, held_out, 4)
    assert learned > recency + 0.1 and learned > rand + 0.1, (learned, recency, rand)


def test_bad_controller_config() -> None:
    with pytest.raises(ConfigError, match="top_k"):
        ControllerConfig(top_k=0)
    with pytest.raises(ConfigError, match="n_queries"):
        RecallConfig(n_pairs=2, n_queries=3, with_replacement=False)


def _lm(layers: int = 2) -> torch.nn.Module:
    return tiny_causal_lm(
        vocab_size=TASK.vocab_size,
        layers=layers,
        hidden=32,
        heads=4,
        max_position=64,
        attn_implementation="eager",
    ).eval()


def test_attention_map_is_streamed_one_layer_at_a_time(monkeypatch) -> None:
    """Issue 30 item 5: the map is summed layer by layer; no layer's (heads, T, T) weights outlive its layer (on the
    old path, ``output_attentions`` kept all four alive until the end). Equal to the mean of the stacked weights."""
    import gc
    import weakref

    from transformers.models.llama import modeling_llama

    from adore.decode import full_attention_map

    lm = _lm(layers=4)
    ids, _ = sample(TASK, 1, seed=3)
    with torch.no_grad():
        ref = torch.stack([a[0].float() for a in lm(ids, output_attentions=True).attentions]).mean(dim=(0, 1))

    alive, most = [], [0]
    original = modeling_llama.eager_attention_forward

    def spy(*args, **kwargs):
        gc.collect()
        most[0] = max(most[0], sum(r() is not None for r in alive))
        out = original(*args, **kwargs)
        alive.append(weakref.ref(out[1]))
        return out

    monkeypatch.setattr(modeling_llama, "eager_attention_forward", spy)
    got = full_attention_map(lm, ids[0])
    assert len(alive) == 4
    assert most[0] == 0, f"{most[0]} earlier layers' attention weights still alive"
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)


def test_attention_topk_gives_the_oracle_labels() -> None:
    from adore.controller import labels_from_topk
    from adore.decode import attention_topk, full_attention_map

    lm = _lm()
    ids, _ = sample(TASK, 1, seed=4)
    full, table = full_attention_map(lm, ids[0]), attention_topk(lm, ids[0], 4)
    assert table.shape == (TASK.length, 4)
    assert table[0].tolist() == [-1, -1, -1, -1] and table[2, 2:].tolist() == [-1, -1]  # fewer earlier keys
    for t in range(1, TASK.length):
        assert torch.equal(labels_from_topk(table, t), oracle_labels(full, t, 4)), t


def test_sdpa_model_is_refused_for_the_attention_map() -> None:
    from adore.decode import full_attention_map

    lm = tiny_causal_lm(vocab_size=TASK.vocab_size, layers=1, hidden=32, heads=4, attn_implementation="sdpa")
    with pytest.raises(ValueError, match="eager"):
        full_attention_map(lm, torch.arange(8))


def test_batched_scores_and_loss_equal_the_per_example_ones() -> None:
    """A batch of examples of different lengths and modes is scored as each alone (the table of only the rows it
    uses), and the batch loss is the mean of the examples' own losses."""
    from torch.nn import functional as F

    from adore.controller import Controller, batch_loss, collect

    lm = _lm()
    seqs, _ = sample(TASK, 3, seed=5)
    examples = collect(lm, seqs, 4)
    assert len(examples) == 3 * 2 * (TASK.length - 2)
    torch.manual_seed(0)
    ctl = Controller(lm.get_input_embeddings().weight, 16).train()
    chosen = [0, 7, 30, 51, 80, 99, 100]
    own = []
    for i in chosen:
        s, t, mode = examples.index[i]
        labels = examples.labels(i)
        assert labels.numel() == (t + 1 if mode == "release" else t) and labels.sum() == min(
            4, labels.numel()
        )
        logits = ctl.score(torch.arange(labels.numel()), seqs[s], t, mode)
        pw = (labels.numel() - labels.sum()) / labels.sum().clamp(min=1)
        own.append(F.binary_cross_entropy_with_logits(logits, labels, pos_weight=pw))
    torch.testing.assert_close(
        batch_loss(ctl, examples, chosen), torch.stack(own).mean(), atol=1e-6, rtol=1e-6
    )

    ragged = collect(lm, [seqs[0], seqs[1, :20]], 4)  # sequences of different lengths (QA contexts) batch too
    short = [i for i, (s, _, _) in enumerate(ragged.index) if s == 1]
    assert len(ragged) == 2 * (TASK.length - 2) + 2 * 18 and torch.isfinite(
        batch_loss(ctl, ragged, [0, *short])
    )


def test_batched_controller_training_learns_too() -> None:
    """batch_size 16 (the paper configs batch 32): 16x fewer optimizer steps, still far above recency and random."""
    lm = tiny_causal_lm(
        vocab_size=TASK.vocab_size,
        layers=2,
        hidden=32,
        heads=4,
        max_position=64,
        attn_implementation="eager",
        seed=0,
    )
    train, _ = sample(TASK, 32, seed=1)
    held_out, _ = sample(TASK, 8, seed=2)
    cfg = ControllerConfig(dim=32, sequences=32, epochs=8, batch_size=16, lr=1e-2)
    controller = train_controller(lm, train, cfg, progress=False)
    learned = recall_at_k(lambda p, i, t: controller.score(p, i, t, "rebuild"), lm, held_out, 4)
    recency = recall_at_k(lambda p, i, t: p.float(), lm, held_out, 4)
    assert learned > recency + 0.1, (learned, recency)


def test_gru_controller_scores_batched_as_alone_and_depend_on_the_context() -> None:
    """kind=gru: the query side is the GRU's state over the stream, so the same (token, query token, distance)
    scores differently after a different context -- which the MLP controller cannot do; batched == alone."""
    from adore.controller import Controller

    lm = _lm()
    torch.manual_seed(0)
    gru = Controller(lm.get_input_embeddings().weight, 16, kind="gru").eval()
    mlp = Controller(lm.get_input_embeddings().weight, 16, kind="mlp").eval()
    a, _ = sample(TASK, 1, seed=6)
    b = a.clone()
    b[0, 1:10] = (b[0, 1:10] + 1) % TASK.vocab_size  # another context far back; positions 10.. the same
    positions = torch.arange(12, 20)
    for ctl, differs in ((gru, True), (mlp, False)):
        sa, sb = ctl.score(positions, a[0], 20, "rebuild"), ctl.score(positions, b[0], 20, "rebuild")
        assert (not torch.allclose(sa, sb, atol=1e-6)) == differs, ctl.kind
    seqs, _ = sample(TASK, 2, seed=7)
    with torch.no_grad():
        batched = gru.score_batch(seqs, torch.tensor([15, 30]), torch.tensor([15, 30]), "rebuild")
        for row, t in enumerate((15, 30)):
            alone = gru.score(torch.arange(t), seqs[row], t, "rebuild")
            torch.testing.assert_close(batched[row, :t], alone, atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="kind"):
        ControllerConfig(kind="lstm")


def test_trained_gru_controller_beats_recency_and_random() -> None:
    lm = tiny_causal_lm(
        vocab_size=TASK.vocab_size,
        layers=2,
        hidden=32,
        heads=4,
        max_position=64,
        attn_implementation="eager",
        seed=0,
    )
    train, _ = sample(TASK, 32, seed=1)
    held_out, _ = sample(TASK, 8, seed=2)
    cfg = ControllerConfig(dim=32, sequences=32, epochs=4, batch_size=8, lr=3e-3, kind="gru")
    controller = train_controller(lm, train, cfg, progress=False)
    g = torch.Generator().manual_seed(0)
    learned = recall_at_k(lambda p, i, t: controller.score(p, i, t, "rebuild"), lm, held_out, 4)
    recency = recall_at_k(lambda p, i, t: p.float(), lm, held_out, 4)
    rand = recall_at_k(lambda p, i, t: torch.rand(p.numel(), generator=g), lm, held_out, 4)
    assert learned > recency + 0.1 and learned > rand + 0.1, (learned, recency, rand)
