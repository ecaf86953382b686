"""Downstream fine-tuning: pretrained weights load exactly; VQA scores equal hand computations; VQA, captioning and
retrieval fine-tuning learn on the synthetic scenes; bad input and the paper-scale configs."""

import json
import math

import pytest
import torch
from hydra.errors import MissingConfigException
from PIL import Image

from paperlab.config import ConfigError, compose, from_config
from paperlab.io import DataError
from semmim import losses
from semmim.data import SceneConfig, SceneObject
from semmim.evaluate import retrieval
from semmim.experiment import ExperimentConfig
from semmim.experiment import run as run_experiment
from semmim.finetune import FinetuneConfig, build_vlp, load_task_data, run
from semmim.finetune_data import (
    answer_vocabulary,
    read_caption_images,
    read_vqa_file,
    scene_questions,
    soft_score,
    soft_targets,
    synthetic_vqa,
    vqa_accuracy,
)
from semmim.finetune_models import VQAClassifier, multi_positive_itc, vqa_loss
from semmim.finetune_tasks import grouped_ranks, grouped_retrieval, head_groups, schedule
from semmim.vlp import load_weights, save_weights

SMALL = [
    "model.vision_width=32",
    "model.vision_depth=1",
    "model.vision_heads=2",
    "model.text_width=32",
    "model.text_depth=1",
    "model.text_heads=2",
    "model.fusion_depth=1",
    "model.fusion_heads=2",
    "model.embed_dim=16",
    "model.prototypes=8",
    "model.head_hidden=32",
    "model.head_bottleneck=16",
    "task.decoder.width=32",
    "task.decoder.depth=1",
    "task.decoder.heads=2",
]


def _config(task: str, *overrides: str) -> FinetuneConfig:
    return from_config(
        FinetuneConfig, compose("semmim", [f"task={task}", *overrides], config_name="finetune")
    )


def _outputs(model, images, ids, attention):
    img, txt, ie, te = model.encode(images, ids, attention)
    img_m = model.encode(images, ids, attention, momentum=True)[0]
    return img, txt, ie, te, img_m, model.itm_logits(txt, img, attention), model.mlm_head(txt)


# ----------------------------------------------------------------------------------------------- weights
def test_loaded_weights_reproduce_the_pretrained_model_exactly(make_model, batch, tmp_path):
    trained = make_model("semmim")
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.05 * torch.randn_like(p))  # weights no fresh model has
        trained.center.add_(0.3)
    save_weights(trained, tmp_path / "w.pt")
    fresh = make_model("semmim", seed=7)
    load_weights(fresh, tmp_path / "w.pt")
    trained.eval(), fresh.eval()
    with torch.no_grad():
        for a, b in zip(_outputs(trained, *batch), _outputs(fresh, *batch), strict=True):
            assert torch.equal(a, b)
    assert torch.equal(fresh.center, trained.center)


def test_vocabulary_grows_with_fresh_rows(make_model, tokenizer, batch, tmp_path):
    """A task that adds words (the VQA questions) keeps the pretrained rows of the caption words."""
    from semmim.vlp import SemMIMModel

    small = make_model("base")
    save_weights(small, tmp_path / "w.pt")
    big = SemMIMModel(
        small.cfg, small.loss_cfg, tokenizer.vocab_size + 9, tokenizer.special_ids, tokenizer.mask_id
    )
    load_weights(big, tmp_path / "w.pt")
    v = tokenizer.vocab_size
    assert torch.equal(big.text.tokens.weight[:v], small.text.tokens.weight)
    assert torch.equal(big.mlm_head.bias[:v], small.mlm_head.bias)
    assert big.text.tokens.weight.shape[0] == v + 9
    with torch.no_grad():
        assert torch.equal(small.text(*batch[1:]), big.text(*batch[1:]))


def test_a_checkpoint_that_does_not_fit_names_file_keys_and_sizes(make_model, tmp_path):
    save_weights(make_model("base"), tmp_path / "w.pt")
    wider = make_model("base", head_hidden=48, fusion_depth=2)
    with pytest.raises(ConfigError, match=r"w\.pt") as err:
        load_weights(wider, tmp_path / "w.pt")
    message = str(err.value)
    assert "head.project.0.weight: file (32, 32) vs model (48, 32)" in message
    assert "fusion.layers.1." in message and "missing key" in message
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        load_weights(wider, tmp_path / "nope.pt")


def test_pretraining_can_save_its_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path))
    overrides = ["experiment=tiny", "name=toy", "train.steps=2", "train.warmup=1", "train.log_every=1"]
    overrides += ["data.train_images=32", "data.test_images=8", "progress=false", "methods=[base]"]
    overrides += ["++save_weights=true", *(s for s in SMALL if s.startswith("model."))]
    run_experiment(from_config(ExperimentConfig, compose("semmim", overrides)))
    state = torch.load(tmp_path / "semmim" / "toy" / "base_seed0.pt", weights_only=False)
    assert state["config"]["text_width"] == 32 and state["vocab_size"] == 23
    assert "image_queue" not in state["model"] and "momentum.fusion.text_norm.weight" in state["model"]


# ----------------------------------------------------------------------------------------------- VQA scores
def test_vqa_soft_score_and_accuracy_equal_hand_computation():
    answers = ["red"] * 2 + ["blue"] * 7 + ["a Red."]  # 3 annotators said red after normalisation
    assert soft_score("red", answers) == 1.0
    assert soft_score("blue", answers) == 1.0
    assert soft_score("green", answers) == 0.0
    two = ["2", "2", "two", "3"]
    assert soft_score("2", two) == pytest.approx(2 / 3)
    assert soft_score("3", two) == pytest.approx(1 / 3)
    assert vqa_accuracy(["3", "green", "2"], [two, answers, two]) == pytest.approx(
        100 * (1 / 3 + 0 + 2 / 3) / 3
    )
    vocab = answer_vocabulary([two, ["3", "yes"]], 2)
    assert vocab == ["2", "3"]  # 2 twice, 3 twice: ties alphabetical; "two" and "yes" once
    assert soft_targets([two], vocab).tolist() == [[pytest.approx(2 / 3), pytest.approx(1 / 3)]]


def test_vqa_loss_equals_hand_computation():
    logits = torch.tensor([[0.0, math.log(3.0)]])
    targets = torch.tensor([[1.0, 0.5]])
    # BCE(0; 1) = log 2; BCE(log 3; 0.5) = -(0.5 log(3/4) + 0.5 log(1/4)); mean over 2 answers x 2 answers
    expected = math.log(2) - 0.5 * math.log(0.75) - 0.5 * math.log(0.25)
    assert float(vqa_loss(logits, targets)) == pytest.approx(expected, rel=1e-6)


def test_multi_positive_itc_equals_hand_computation():
    sim = torch.tensor([[2.0, 0.0, 1.0], [0.5, 1.0, 0.0], [0.0, 0.0, 3.0]])
    unique = torch.eye(3, dtype=torch.bool)
    assert torch.allclose(multi_positive_itc(sim, sim.T, unique), losses.itc_loss(sim, sim.T))
    # items 0 and 1 are captions of one image: each row's target is 1/2 on both
    ids = torch.tensor([0, 0, 1])
    pos = ids[:, None] == ids[None, :]
    logp = torch.log_softmax(sim, 1)
    logp_t = torch.log_softmax(sim.T, 1)
    i2t = -(0.5 * (logp[0, 0] + logp[0, 1]) + 0.5 * (logp[1, 0] + logp[1, 1]) + logp[2, 2]) / 3
    t2i = -(0.5 * (logp_t[0, 0] + logp_t[0, 1]) + 0.5 * (logp_t[1, 0] + logp_t[1, 1]) + logp_t[2, 2]) / 3
    assert float(multi_positive_itc(sim, sim.T, pos)) == pytest.approx(float(i2t + t2i) / 2, rel=1e-6)


def test_synthetic_questions_ask_only_what_the_scene_answers():
    scene = [
        SceneObject("small", "red", "circle", 0),
        SceneObject("large", "blue", "circle", 1),
        SceneObject("small", "red", "square", 3),
    ]
    # two circles: no colour question about "the circle"; two red objects: no shape question about "the red object"
    assert scene_questions(scene) == [
        ("what colour is the square", "red"),
        ("what shape is the blue object", "circle"),
        ("how many objects", "3"),
    ]
    data = synthetic_vqa(SceneConfig(train_images=30, test_images=9), "test")
    assert {a[0] for q, a in zip(data.questions, data.answers, strict=True) if q == "how many objects"} == {
        "1",
        "2",
        "3",
    }
    assert len(data.images) == 9 and all(len(a) == 10 for a in data.answers)  # 3 images per object count


def test_the_new_head_learns_at_its_own_rate(make_model):
    cfg = _config("vqa_tiny", "train.lr=1e-4", "task.head_lr_mult=10")
    groups = head_groups(VQAClassifier(make_model("base"), 5), cfg)
    rates = {(g["lr"], g["weight_decay"]): sum(p.numel() for p in g["params"]) for g in groups}
    assert set(rates) == {(1e-4, 0.02), (1e-4, 0.0), (1e-3, 0.02), (1e-3, 0.0)}
    assert rates[(1e-3, 0.02)] == 32 * 64 + 64 * 5  # the two head matrices


# ----------------------------------------------------------------------------------------------- behaviour
def _finetune(task: str, tmp_path, monkeypatch, *overrides: str) -> dict:
    """Fine-tune ``task`` from a freshly initialised small model saved as ``init``."""
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path))
    base = [*SMALL, "train.warmup=5", "train.log_every=10", "progress=false", "data.test_images=60"]
    cfg = _config(task, *base, f"init={tmp_path / 'init.pt'}", *overrides)
    torch.manual_seed(0)
    save_weights(build_vlp(cfg, load_task_data(cfg).tokenizer), tmp_path / "init.pt")
    metrics = run(cfg)
    out = tmp_path / "semmim" / f"finetune_{task}"
    assert json.loads((out / "metrics.json").read_text())["steps"] == cfg.train.steps
    assert "Paper comparison" in (out / "results.md").read_text()
    return metrics


def test_vqa_finetuning_beats_the_blind_baselines(tmp_path, monkeypatch):
    overrides = ("train.steps=400", "train.lr=1e-3", "task.head_lr_mult=1", "data.train_images=600")
    m = _finetune("vqa_tiny", tmp_path, monkeypatch, *overrides)
    tuned, prior = m["fine-tuned"]["VQA acc"], m["question-type prior"]["VQA acc"]
    assert tuned > prior + 8 and tuned > m["majority answer"]["VQA acc"] + 15, (tuned, prior)
    assert m["fine-tuned"]["how many"] > 50  # counting 1-3 objects: the prior answers 33 %


def test_caption_decoder_learns_the_scene_captions(tmp_path, monkeypatch):
    overrides = ("train.steps=300", "train.lr=1e-3", "task.head_lr_mult=3", "data.train_images=300")
    m = _finetune("caption_tiny", tmp_path, monkeypatch, *overrides)
    loss = [h["loss"] for h in m["history"]]
    assert loss[-1] < 0.1 * loss[0]
    before, after = m["untrained"], m["finetuned"]
    assert after["BLEU-4"] > before["BLEU-4"] + 0.2 and after["CIDEr"] > before["CIDEr"] + 1.0, (
        before,
        after,
    )
    assert m["embedding_from_text"]  # decoder width = text width: the token embedding is the text encoder's


def test_beam_search_with_one_beam_is_greedy(make_model, corpus, tokenizer):
    from semmim.finetune_models import CaptionDecoder

    torch.manual_seed(0)
    decoder = CaptionDecoder(
        make_model("base"), 32, 1, 2, 24, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id
    )
    images, _ = corpus[1].batch(torch.arange(3))
    greedy = decoder.generate(images, 8, beams=1)
    memory = decoder.image_memory(images)
    assert [decoder._beam(memory[i : i + 1], 8, 1) for i in range(3)] == greedy
    assert all(len(seq) <= 7 for seq in decoder.generate(images, 8, beams=3))


def test_retrieval_finetuning_loss_falls(tmp_path, monkeypatch):
    overrides = ("train.steps=60", "train.lr=1e-3", "data.train_images=300")
    m = _finetune("retrieval_tiny", tmp_path, monkeypatch, *overrides)
    loss = [h["loss"] for h in m["history"]]
    assert loss[-1] < 0.85 * loss[0], loss
    assert m["finetuned"]["itm_t2i_R@5"] > m["pretrained"]["itm_t2i_R@5"] + 10


def test_grouped_ranks_count_any_caption_of_an_image():
    # texts 0, 1 describe image 0; text 2 describes image 1
    sim = torch.tensor([[0.2, 0.9], [0.8, 0.1], [0.3, 0.5]])
    t2i, i2t = grouped_ranks(sim, torch.tensor([0, 0, 1]))
    assert t2i.tolist() == [2, 1, 1]
    # image 0 ranks the texts 0.8 (its own), 0.3, 0.2 (its own): best own rank 1; image 1: 0.9, 0.5 (own): 2
    assert i2t.tolist() == [1, 2]


def test_grouped_ranks_do_not_let_ties_help():
    # text 0 ties with image 1 (0.5, 0.5): rank 1.5 on average, not 1; image 1 ties between text 2 (own) and text 0
    sim = torch.tensor([[0.5, 0.5], [0.8, 0.1], [0.3, 0.5]])
    t2i, i2t = grouped_ranks(sim, torch.tensor([0, 0, 1]))
    assert t2i.tolist() == [1.5, 1.0, 1.0]
    assert i2t.tolist() == [1.0, 1.5]
    t2i, _ = grouped_ranks(torch.zeros(4, 4), torch.arange(4))  # constant scores: the middle, not the top
    assert t2i.tolist() == [2.5] * 4


def test_grouped_retrieval_equals_retrieval_with_one_caption_per_image(make_model, corpus, tokenizer):
    from semmim.data import CaptionSet

    torch.manual_seed(0)
    model = make_model("base")
    test = CaptionSet(corpus[1].images[:24], corpus[1].captions[:24], [[] for _ in range(24)])
    plain = retrieval(model, test, tokenizer, 4)
    grouped = grouped_retrieval(model, test, torch.arange(24), tokenizer, 4)
    assert grouped == pytest.approx({k: plain[k] for k in grouped})
    # every image listed twice with the same caption: each image now has two matching rows
    double = CaptionSet(test.images.repeat(2, 1, 1, 1), test.captions * 2, [[]] * 48)
    twice = grouped_retrieval(model, double, torch.arange(48) % 24, tokenizer, 4)
    assert twice["itc_t2i_R@1"] == pytest.approx(plain["itc_t2i_R@1"])


def test_tasks_run_on_json_files_with_several_captions_per_image(tmp_path, monkeypatch, corpus):
    """The paper-scale path (JSON files, images on disk, 2 captions per image) end to end with the tiny text
    encoder: grouped retrieval, one generated caption per image against both references, VQA from a file."""
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path))
    rows, questions = [], []
    for i in range(12):
        Image.fromarray(corpus[0].images[i].permute(1, 2, 0).numpy()).save(tmp_path / f"{i}.png")
        scene = corpus[0].scenes[i]
        rows += [
            {"image": f"{i}.png", "caption": corpus[0].captions[i]},
            {"image": f"{i}.png", "caption": scene[0].phrase()},
        ]
        questions.append({"image": f"{i}.png", "question": "how many objects?", "answers": ["2"] * 9 + ["3"]})
    (tmp_path / "captions.json").write_text(json.dumps(rows))
    (tmp_path / "vqa.json").write_text(json.dumps(questions))
    files = [
        *SMALL,
        "train.steps=3",
        "train.warmup=1",
        "train.batch=4",
        "train.log_every=1",
        "progress=false",
    ]
    files += ["init=scratch", "task.source=files", "task.epochs=0"]
    for task, name in (("retrieval_tiny", "captions"), ("caption_tiny", "captions"), ("vqa_tiny", "vqa")):
        both = [f"task.train_file={tmp_path / name}.json", f"task.test_file={tmp_path / name}.json"]
        metrics = run(_config(task, *files, *both))
        assert len(metrics["history"]) == 3
    retrieval_out = json.loads((tmp_path / "semmim" / "finetune_retrieval_tiny" / "metrics.json").read_text())
    assert (
        set(retrieval_out["finetuned"]) >= {"itm_t2i_R@1", "itc_i2t_R@10"}
        and "itm_t2i_err_attr" not in retrieval_out["finetuned"]
    )
    for key, queries in (("itc_i2t_R@5", 12), ("itm_t2i_R@1", 24)):  # 12 image queries, 24 caption queries
        hits = retrieval_out["finetuned"][key] * queries / 100
        assert hits == pytest.approx(round(hits)), key
    caption_out = json.loads((tmp_path / "semmim" / "finetune_caption_tiny" / "metrics.json").read_text())
    assert len(caption_out["finetuned"]["examples"]) == 2
    vqa_out = json.loads((tmp_path / "semmim" / "finetune_vqa_tiny" / "metrics.json").read_text())
    assert vqa_out["answers"] == 2 and vqa_out["majority answer"]["VQA acc"] == 100.0


# ----------------------------------------------------------------------------------------------- bad input
def test_bad_vqa_files_name_the_file_entry_and_field(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        read_vqa_file(tmp_path / "missing.json", 32)
    good = {"image": "a.png", "question": "what colour?", "answers": ["red"]}
    for field in ("answers", "question", "image"):
        path = tmp_path / f"no_{field}.json"
        path.write_text(json.dumps([good, {k: v for k, v in good.items() if k != field}]))
        with pytest.raises(DataError, match=rf"no_{field}\.json: item 2: field '{field}' is missing"):
            read_vqa_file(path, 32)
    path = tmp_path / "empty.json"
    path.write_text(json.dumps([{**good, "answers": []}]))
    with pytest.raises(DataError, match=r"empty\.json: item 1: field 'answers' must be a non-empty list"):
        read_vqa_file(path, 32)
    path = tmp_path / "good.json"
    path.write_text(
        json.dumps([good, {**good, "question": "What shape?", "answers": ["A circle", "square"]}])
    )
    with pytest.raises(DataError, match=r"good\.json: item 1: image .*a\.png not found"):
        read_vqa_file(path, 32)
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "a.png")
    data = read_vqa_file(path, 16)
    assert len(data.images) == 1 and data.image_of.tolist() == [0, 0]  # one image, listed once
    assert data.images[0].shape == (3, 16, 16) and data.batch(torch.tensor([1]))[0].shape == (1, 3, 16, 16)
    assert data.questions == ["what colour", "what shape"] and data.answers[1] == ["circle", "square"]
    captions = tmp_path / "captions.json"
    rows = [{"image": "a.png", "caption": "red"}, {"image": "b.png", "caption": "green"}, {"image": "a.png"}]
    captions.write_text(json.dumps(rows))
    with pytest.raises(DataError, match=r"captions\.json: item 3: field 'caption' is missing"):
        read_caption_images(captions, 16)
    Image.new("RGB", (8, 8), (0, 255, 0)).save(tmp_path / "b.png")
    captions.write_text(json.dumps([*rows[:2], {"image": "a.png", "caption": "a red square"}]))
    pairs = read_caption_images(captions, 16)
    assert len(pairs.images) == 2 and pairs.image_of.tolist() == [0, 1, 0]
    images, text = pairs.batch(torch.tensor([2, 1]))
    assert text == ["a red square", "green"] and images[0, 0, 0, 0] == 1.0 and images[1, 1, 0, 0] == 1.0


def test_unknown_task_and_bad_values_name_the_field():
    with pytest.raises(MissingConfigException, match="task/nope"):
        _config("nope")
    for override, field in (
        ("task.kind=ocr", r"task\.kind"),
        ("task.decoder.heads=3", r"task\.decoder\.width"),
        ("pretrain.method=magic", r"pretrain\.method"),
        ("task.source=files", r"task\.train_file"),
    ):
        with pytest.raises(ConfigError, match=field):
            _config("vqa_tiny", override)


# ----------------------------------------------------------------------------------------------- paper scale
def test_paper_configs_compose_offline_with_albef_recipes(monkeypatch):
    expected = {  # task: (kind, epochs, lr, rerank_k / answers / beams)
        "coco_retrieval": ("retrieval", 5, 1e-5, 256),
        "flickr_retrieval": ("retrieval", 10, 1e-5, 128),
        "vqa": ("vqa", 8, 2e-5, 3129),
        "coco_caption": ("caption", 5, 1e-5, 3),
    }
    monkeypatch.setenv("WORLD_SIZE", "8")
    for task, (kind, epochs, lr, number) in expected.items():
        cfg = _config(task)
        assert (cfg.task.kind, cfg.task.source, cfg.task.epochs, cfg.train.lr) == (kind, "files", epochs, lr)
        assert cfg.model.vision == "vit_base_patch16_224" and cfg.model.text == "bert-base-uncased"
        assert cfg.model.text_width == 768 and cfg.train.batch == 32 and cfg.init.endswith("semmim_seed42.pt")
        got = {"retrieval": cfg.task.rerank_k, "vqa": cfg.task.answers, "caption": cfg.task.decoder.beams}[
            kind
        ]
        assert got == number
        # COCO Karpathy train has 566,747 captions: 5 epochs at 32 x 8 per step
        assert schedule(cfg, 566_747).steps == math.ceil(epochs * 566_747 / 256)
    assert _config("coco_retrieval").task.itc_queue == 65536
    with pytest.raises(ConfigError, match="init"):
        _config("vqa", "init=")
