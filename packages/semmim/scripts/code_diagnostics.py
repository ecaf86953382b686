"""Code-entropy diagnostics for SemMIM's shared K-prototype space.

Trains one method (default semmim) with the tiny config + hydra-style overrides, pausing every `--every` steps
(exact resume through pretrain's checkpoints), and measures on a fixed set of 256 TRAIN images with their captions:

  global (image [CLS] -> head, momentum model, teacher with the current running centre / Sinkhorn):
    H_img   mean per-image entropy of the teacher distribution (log K = uniform)
    H_marg  entropy of the batch-mean distribution (marginal; low = collapse onto few prototypes)
    spread  mean over k of the std over images of the centred logits (l - c)  [in cosine units]
    MI_col  mean over the 6 colours of I(argmax code; image contains colour c) in bits
  patch (momentum fused patches -> head, as MIM targets):
    H_img, H_marg, spread as above (over all patches)
    MI_lab  I(argmax code; patch label) in bits, label = background | (colour, size+shape) of the object in it
    H_lab   H(patch label) in bits (upper bound of MI_lab)
    H_bg/H_obj  per-patch target entropy on background / object patches

Usage: python packages/semmim/scripts/code_diagnostics.py --steps 250 --every 25 [--method semmim] [override ...] (overrides as for python -m semmim)
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module

from paperlab.config import from_config
from paperlab.seed import seed_everything
from semmim import losses
from semmim.data import COLOURS
from semmim.experiment import ExperimentConfig, build_model, load_corpus
from semmim.train import pretrain


def entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


def mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) in bits from two integer label arrays."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(joint, (ai, bi), 1)
    joint /= joint.sum()
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / (pa @ pb)[nz])).sum())


def soft_mi(t: torch.Tensor, y: np.ndarray) -> float:
    """I(Z; Y) in bits when Z is drawn from each item's target distribution t (N, K): H(Z) - H(Z | Y).
    Near-uniform targets carry ~0 bits whatever their argmax."""
    t = t.double()
    hz = float(entropy(t.mean(0))) / math.log(2)
    hzy = 0.0
    for v in np.unique(y):
        sel = torch.from_numpy(y == v)
        hzy += float(sel.double().mean()) * float(entropy(t[sel].mean(0))) / math.log(2)
    return hz - hzy


def patch_labels(images_u8: torch.Tensor, patch: int) -> np.ndarray:
    """(B, N) int labels: 0 background, else an id of (colour, binary mask of the object in the cell)."""
    b, _, h, w = images_u8.shape
    x = images_u8.reshape(b, 3, h // patch, patch, w // patch, patch).permute(0, 2, 4, 1, 3, 5)
    x = x.reshape(b, -1, 3, patch * patch)  # (B, N, 3, P)
    fg = (x != 16).any(2)  # (B, N, P)
    labels = np.zeros(fg.shape[:2], dtype=np.int64)
    table: dict = {}
    colours = {v: i for i, v in enumerate(COLOURS.values())}
    for i in range(b):
        for j in range(fg.shape[1]):
            m = fg[i, j]
            if not m.any():
                continue
            k = int(m.nonzero()[0][0])
            col = colours.get(tuple(int(v) for v in x[i, j, :, k]), -1)
            key = (col, m.numpy().tobytes())
            labels[i, j] = table.setdefault(key, len(table) + 1)
    return labels


@torch.no_grad()
def measure(model, images, images_u8, ids, att, colours_present, labels) -> dict:
    mim = model.loss_cfg.mim
    img_m, txt_m, _, _ = model.encode(images, ids, att, momentum=True)
    out = {}
    g = model.momentum["head"](model.momentum["image_to_fusion"](img_m[:, 0]))  # (B, K)
    _, fused, _ = model.fuse(txt_m, img_m, att, momentum=True)
    feats = fused[:, 1:] if mim.text_in_target else model.momentum["image_to_fusion"](img_m[:, 1:])
    p = model.momentum["head"](feats)  # (B, N, K)
    tau_p = getattr(mim, "patch_tau_teacher", mim.tau_teacher)
    for name, logits, center, tau in (
        ("g", g, model.center, mim.tau_teacher),
        ("p", p.reshape(-1, p.shape[-1]), model.patch_center, tau_p),
    ):
        if mim.teacher == "sinkhorn":
            t = losses.sinkhorn_distribution(logits, tau)
        else:
            t = losses.teacher_distribution(logits, center, tau)
        out[f"{name}_H_img"] = float(entropy(t).mean())
        out[f"{name}_H_marg"] = float(entropy(t.mean(0)))
        out[f"{name}_spread"] = float((logits - center).std(0).mean())
        out[f"{name}_codes_used"] = len(torch.unique(t.argmax(-1)))
        if name == "g":
            codes = t.argmax(-1).numpy()
            out["g_MI_col"] = float(np.mean([mutual_info(codes, colours_present[:, c]) for c in range(6)]))
            out["g_softMI_col"] = float(np.mean([soft_mi(t, colours_present[:, c]) for c in range(6)]))
        else:
            codes = t.argmax(-1).numpy()
            lab = labels.reshape(-1)
            out["p_MI_lab"] = mutual_info(codes, lab)
            _, cnt = np.unique(lab, return_counts=True)
            q = cnt / cnt.sum()
            out["p_H_lab"] = float(-(q * np.log2(q)).sum())
            out["p_MI_fgbg"] = mutual_info(codes, (lab > 0).astype(int))
            obj = lab > 0
            out["p_MI_obj"] = mutual_info(codes[obj], lab[obj])  # among object patches: colour+size+shape
            _, c2 = np.unique(lab[obj], return_counts=True)
            q2 = c2 / c2.sum()
            out["p_H_objlab"] = float(-(q2 * np.log2(q2)).sum())
            out["p_softMI_lab"] = soft_mi(t, lab)
            out["p_softMI_obj"] = soft_mi(t[torch.from_numpy(obj)], lab[obj])
            he = entropy(t).numpy()
            out["p_H_bg"] = float(he[lab == 0].mean())
            out["p_H_obj"] = float(he[lab > 0].mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--method", default="semmim")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    torch.set_num_threads(1)
    with initialize_config_module("semmim.conf", version_base=None):
        raw = compose(
            "config", overrides=["experiment=tiny", f"train.steps={a.steps}", "progress=false", *a.overrides]
        )
    cfg = from_config(ExperimentConfig, raw)
    train, _, tok = load_corpus(cfg)
    idx = torch.arange(256)
    images, caps = train.batch(idx)
    images_u8 = train.images[idx]
    ids, att = tok(caps)
    colours_present = np.array(
        [[any(o.colour == c for o in s) for c in COLOURS] for s in (train.scenes[i] for i in idx.tolist())]
    ).astype(int)
    labels = patch_labels(images_u8, cfg.model.patch_size)
    seed_everything(a.seed)
    model = build_model(cfg, a.method, a.seed, tok)
    import dataclasses

    tcfg = dataclasses.replace(cfg.train, checkpoint_every=a.every)
    rows = []
    logk = math.log(cfg.model.prototypes)
    with tempfile.TemporaryDirectory() as d:
        ck = Path(d) / "ck.pt"
        for stop in range(a.every, a.steps + 1, a.every):
            hist = pretrain(model, train, tok, tcfg, checkpoint=ck, progress=False, stop_at=stop)
            model.to("cpu")
            row = {
                "step": stop,
                "logK": logk,
                **measure(model, images, images_u8, ids, att, colours_present, labels),
            }
            last = hist[-1] if hist else {}
            row.update({f"loss_{k}": v for k, v in last.items() if k in ("mim", "agr", "itc", "itm")})
            rows.append(row)
            print(
                json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}),
                flush=True,
            )
            model.train()
    if a.out:
        Path(a.out).write_text(json.dumps({"args": vars(a), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
