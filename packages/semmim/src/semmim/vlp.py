"""The SemMIM pretraining model: online encoders + an EMA momentum copy, and one ``forward`` that returns every
pretraining loss (so the model can be wrapped in DDP under ``torchrun`` / ``accelerate launch``).

Per step (``forward``): ITC, ITM with hard negatives and MLM as in ALBEF; when MIM is on, the momentum model
fuses the *unmasked* image with the text, its text-to-patch cross-attention chooses the masked patches
(text-guided) or a random mask is drawn, the momentum patch features (with or without text fused) give the targets
through the shared :class:`semmim.model.SemanticHead`, and the online model predicts them from the masked image
fused with the text. The global agreement loss trains the same head on two views' [CLS] features.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from paperlab.config import ConfigError, require
from paperlab.io import MissingFileError, atomic_torch_save
from semmim import losses
from semmim.masking import patch_relevance, random_mask, text_guided_mask
from semmim.model import (
    ModelConfig,
    SemanticHead,
    build_fusion,
    build_text,
    build_vision,
    encode_crops,
    encode_image,
    patchify,
)

#: modules copied into the momentum model
MOMENTUM_PARTS = ("vision", "text", "fusion", "vision_proj", "text_proj", "image_to_fusion", "head")
#: state that is not a weight: fine-tuning starts these afresh (the ITC queues' size is a loss setting)
FRESH_STATE = ("image_queue", "text_queue", "queue_ptr")


@dataclasses.dataclass
class MIMConfig:
    """SemMIM's switches. ``target``: semantic (K-way codes) | features (raw momentum features) | pixels;
    ``masking``: text (text-guided) | random; ``text_in_target``: momentum patch features taken after fusing the
    text (True) or straight from the momentum image encoder (False); ``agreement``: the global agreement loss."""

    enabled: bool = False
    target: str = "semantic"
    masking: str = "text"
    text_in_target: bool = True
    agreement: bool = True
    mask_ratio: float = 0.5
    teacher: str = "center"  # center (DINO: centring + sharpening) | sinkhorn (SwAV equipartition)
    guided: str = "top"  # top | sample (see semmim.masking.text_guided_mask)
    guided_temperature: float = 0.01
    weight: float = 1.0  # lambda_mim
    agreement_weight: float = 1.0  # lambda_agr
    tau_student: float = 0.1
    tau_teacher: float = 0.04
    # iBOT (Zhou et al., 2022) gives the patch targets their own teacher temperature (`teacher_patch_temp`);
    # None = tau_teacher for both the global agreement codes and the MIM patch targets.
    tau_teacher_patch: float | None = None
    center_momentum: float = 0.9
    # the agreement loss's second view (semmim.data.augment): besides a shift and a brightness scale, with these
    # probabilities its colour channels are permuted (a hue change of the synthetic palette) or it turns grey --
    # DINO's colour jitter (p = 0.8) and random grayscale (p = 0.2), the default since session 14; 0 = shift +
    # brightness only (the earlier default)
    view_hue_p: float = 0.8
    view_gray_p: float = 0.2
    # the second view's kind (semmim.views): shift (the tiny one above) | dino (DINO's second global view:
    # RandomResizedCrop with view_crop_scale, flip, colour jitter with p view_hue_p, grayscale with p view_gray_p,
    # blur, solarisation; the paper default)
    view: str = "shift"
    view_crop_scale: list[float] = dataclasses.field(default_factory=lambda: [0.4, 1.0])
    # multi-crop (semmim.views.local_views): this many DINO local crops of local_crop_size px per image for the
    # online model only (DINO: 8 crops of 96 px, scale (0.05, 0.4)); 0 = the two global views alone
    local_crops: int = 0
    local_crop_size: int = 96
    local_crop_scale: list[float] = dataclasses.field(default_factory=lambda: [0.05, 0.4])

    def __post_init__(self) -> None:
        require(
            self.target in ("semantic", "features", "pixels"),
            "mim.target",
            self.target,
            "semantic, features or pixels",
        )
        require(self.masking in ("text", "random"), "mim.masking", self.masking, "text or random")
        require(0.0 < self.mask_ratio < 1.0, "mim.mask_ratio", self.mask_ratio, "a float in (0, 1)")
        require(self.guided in ("top", "sample"), "mim.guided", self.guided, "top or sample")
        require(self.teacher in ("center", "sinkhorn"), "mim.teacher", self.teacher, "center or sinkhorn")
        require(
            0 < self.tau_teacher <= self.tau_student,
            "mim.tau_teacher",
            self.tau_teacher,
            f"in (0, mim.tau_student={self.tau_student}] (the teacher sharpens)",
        )
        if self.tau_teacher_patch is not None:
            require(
                0 < self.tau_teacher_patch <= self.tau_student,
                "mim.tau_teacher_patch",
                self.tau_teacher_patch,
                f"null or in (0, mim.tau_student={self.tau_student}] (the teacher sharpens)",
            )
        for name in ("view_hue_p", "view_gray_p"):
            require(
                0.0 <= getattr(self, name) <= 1.0,
                f"mim.{name}",
                getattr(self, name),
                "a probability in [0, 1]",
            )
        require(self.view in ("shift", "dino"), "mim.view", self.view, "shift or dino")
        lo, hi = [*self.view_crop_scale, 0.0, 0.0][:2]
        require(
            len(self.view_crop_scale) == 2 and 0 < lo <= hi <= 1,
            "mim.view_crop_scale",
            self.view_crop_scale,
            "[low, high] with 0 < low <= high <= 1",
        )
        require(self.local_crops >= 0, "mim.local_crops", self.local_crops, ">= 0 (0: no local crops)")
        require(self.local_crop_size > 0, "mim.local_crop_size", self.local_crop_size, "> 0 px")
        require(
            len(self.local_crop_scale) == 2
            and 0.0 < self.local_crop_scale[0] <= self.local_crop_scale[1] <= 1.0,
            "mim.local_crop_scale",
            self.local_crop_scale,
            "[min, max] area fractions with 0 < min <= max <= 1",
        )
        require(0.0 <= self.center_momentum < 1.0, "mim.center_momentum", self.center_momentum, "in [0, 1)")
        require(self.weight >= 0 and self.agreement_weight >= 0, "mim.weight", self.weight, ">= 0")

    @property
    def patch_tau_teacher(self) -> float:
        """The teacher temperature of the MIM patch targets (``tau_teacher_patch``, else ``tau_teacher``)."""
        return self.tau_teacher if self.tau_teacher_patch is None else self.tau_teacher_patch


@dataclasses.dataclass
class LossConfig:
    itc: bool = True
    itm: bool = True
    mlm: bool = True
    itc_queue: int = 0  # 0 = in-batch ITC; > 0 = ALBEF's queue of momentum features of this size
    mlm_prob: float = 0.15
    mim: MIMConfig = dataclasses.field(default_factory=MIMConfig)

    def __post_init__(self) -> None:
        require(self.itc_queue >= 0, "loss.itc_queue", self.itc_queue, ">= 0")
        require(0.0 < self.mlm_prob < 1.0, "loss.mlm_prob", self.mlm_prob, "in (0, 1)")


class SemMIMModel(nn.Module):
    """Online model, momentum model (``self.momentum``, no gradients) and the running centres and ITC queues."""

    def __init__(
        self, cfg: ModelConfig, loss: LossConfig, vocab_size: int, special_ids, mask_id: int
    ) -> None:
        super().__init__()
        self.cfg, self.loss_cfg = cfg, loss
        self.vocab_size, self.special_ids, self.mask_id = vocab_size, tuple(special_ids), mask_id
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            self.vision = build_vision(cfg)
            self.text = build_text(cfg, vocab_size)
            vw = self.vision.embed_dim
            tw = cfg.text_width
            self.image_to_fusion = nn.Linear(vw, tw)
            self.fusion = build_fusion(cfg, self.text)
            self.vision_proj = nn.Linear(vw, cfg.embed_dim)
            self.text_proj = nn.Linear(tw, cfg.embed_dim)
            self.itm_head = nn.Linear(tw, 2)
            self.mlm_head = nn.Linear(tw, vocab_size)
            self.head = SemanticHead(tw, cfg.head_hidden, cfg.head_bottleneck, cfg.prototypes)
            self.pixel_decoder = nn.Linear(tw, 3 * cfg.patch_size**2)
            self.feature_decoder = nn.Linear(tw, tw)
            self.mask_token = nn.Parameter(torch.zeros(vw))
            nn.init.normal_(self.mask_token, std=0.02)
            self.log_temp = nn.Parameter(torch.tensor(float(cfg.temperature)).log())
        self.momentum = nn.ModuleDict({name: copy.deepcopy(getattr(self, name)) for name in MOMENTUM_PARTS})
        self.momentum.requires_grad_(False)
        self.register_buffer("center", torch.zeros(cfg.prototypes))
        self.register_buffer("patch_center", torch.zeros(cfg.prototypes))
        q = max(loss.itc_queue, 1)
        self.register_buffer("image_queue", F.normalize(torch.randn(q, cfg.embed_dim), dim=1))
        self.register_buffer("text_queue", F.normalize(torch.randn(q, cfg.embed_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------------------------------- encoders
    def encode(
        self, images: torch.Tensor, ids: torch.Tensor, attention: torch.Tensor, momentum: bool = False
    ):
        """``(image tokens (B, 1+N, D_v), text tokens (B, L, D_t), image emb (B, E), text emb (B, E))``; the
        embeddings are the L2-normalised ITC features."""
        m = self.momentum if momentum else self._modules
        img = encode_image(m["vision"], images)
        txt = m["text"](ids, attention)
        return (
            img,
            txt,
            F.normalize(m["vision_proj"](img[:, 0]), dim=-1),
            F.normalize(m["text_proj"](txt[:, 0]), dim=-1),
        )

    def fuse(self, txt, img, attention, momentum: bool = False):
        """Fusion encoder on text tokens and image tokens: ``(text out, image out, cross-attention)``."""
        m = self.momentum if momentum else self._modules
        return m["fusion"](txt, m["image_to_fusion"](img), attention)

    def itm_logits(self, txt, img, attention) -> torch.Tensor:
        return self.itm_head(self.fuse(txt, img, attention)[0][:, 0])

    @torch.no_grad()
    def ema_update(self) -> None:
        """``theta_bar <- m theta_bar + (1 - m) theta`` for every momentum parameter (buffers are copied)."""
        m = self.cfg.momentum
        for name in MOMENTUM_PARTS:
            online, target = getattr(self, name), self.momentum[name]
            for p, q in zip(online.parameters(), target.parameters(), strict=True):
                q.mul_(m).add_(p.detach(), alpha=1 - m)
            for b, c in zip(online.buffers(), target.buffers(), strict=True):
                c.copy_(b)

    # ------------------------------------------------------------------------------------------- MIM pieces
    @torch.no_grad()
    def mim_mask_and_targets(self, images, img_m, txt_m, attention):
        """Mask ``(B, N)`` and targets from the momentum model (semantic: ``(B, N, K)`` distributions)."""
        mim = self.loss_cfg.mim
        _, fused_img, weights = self.fuse(txt_m, img_m, attention, momentum=True)
        b, n = images.shape[0], self.cfg.num_patches
        if mim.masking == "text":
            relevance = patch_relevance(weights, attention)
            mask = text_guided_mask(relevance, mim.mask_ratio, mim.guided, mim.guided_temperature)
        else:
            mask = random_mask(b, n, mim.mask_ratio, images.device)
        if mim.target == "pixels":
            return mask, patchify(images, self.cfg.patch_size)
        feats = fused_img[:, 1:] if mim.text_in_target else self.momentum["image_to_fusion"](img_m[:, 1:])
        if mim.target == "features":
            return mask, feats
        logits = self.momentum["head"](feats)
        if mim.teacher == "sinkhorn":
            return mask, losses.sinkhorn_distribution(logits, mim.patch_tau_teacher)
        targets = losses.teacher_distribution(logits, self.patch_center, mim.patch_tau_teacher)
        self._update_center(self.patch_center, logits)
        return mask, targets

    def mim_loss(self, images, txt, attention, mask, targets) -> torch.Tensor:
        """The online model sees the masked image with the text fused and predicts each masked patch's target."""
        mim = self.loss_cfg.mim
        img_masked = encode_image(self.vision, images, mask, self.mask_token)
        fused = self.fuse(txt, img_masked, attention)[1][:, 1:]
        if mim.target == "semantic":
            return losses.semantic_mim_loss(targets, self.head(fused), mask, mim.tau_student)
        if mim.target == "features":
            return losses.feature_mim_loss(targets, self.feature_decoder(fused), mask)
        return losses.pixel_mim_loss(targets, self.pixel_decoder(fused), mask)

    def global_agreement(self, img, img_m, view2, local_views=None) -> torch.Tensor:
        """The agreement loss of the two global views (``img`` / ``img_m``: the online / momentum tokens of the
        batch, ``view2`` its second view) and, with multi-crop, of the online model's ``local_views``."""
        mim = self.loss_cfg.mim
        img2 = encode_image(self.vision, view2)
        crops = [encode_crops(self.vision, v) for v in local_views or ()]
        student = tuple(self.head(self.image_to_fusion(x[:, 0])) for x in (img, img2, *crops))
        with torch.no_grad():
            img2_m = encode_image(self.momentum["vision"], view2)
            teacher = tuple(
                self.momentum["head"](self.momentum["image_to_fusion"](x[:, 0])) for x in (img_m, img2_m)
            )
        loss = losses.agreement_loss(
            student, teacher, self.center, mim.tau_student, mim.tau_teacher, mim.teacher
        )
        self._update_center(self.center, torch.cat(teacher))
        return loss

    # ------------------------------------------------------------------------------------------- one step
    def forward(self, images, ids, attention, view2=None, local_views=None) -> dict[str, torch.Tensor]:
        """Every enabled loss and ``loss`` (their weighted sum) for a batch: images ``(B, 3, H, W)``, word ids and
        attention ``(B, L)``, ``view2`` a second augmentation of ``images`` (needed by the agreement loss),
        ``local_views`` a list of DINO local crops ``(B, 3, s, s)`` (multi-crop, ``mim.local_crops``)."""
        lc, mim = self.loss_cfg, self.loss_cfg.mim
        out: dict[str, torch.Tensor] = {}
        img, txt, img_emb, txt_emb = self.encode(images, ids, attention)
        with torch.no_grad():
            img_m, txt_m, img_emb_m, txt_emb_m = self.encode(images, ids, attention, momentum=True)
        same = (ids.unsqueeze(1) == ids.unsqueeze(0)).all(-1)
        temp = self.log_temp.exp().clamp(0.001, 0.5)
        if lc.itc:
            if lc.itc_queue:
                sim_i2t = img_emb @ torch.cat([txt_emb_m, self.text_queue]).T / temp
                sim_t2i = txt_emb @ torch.cat([img_emb_m, self.image_queue]).T / temp
                self._enqueue(img_emb_m, txt_emb_m)
            else:
                sim_i2t = img_emb @ txt_emb.T / temp
                sim_t2i = sim_i2t.T
            out["itc"] = losses.itc_loss(sim_i2t, sim_t2i)
        if lc.itm:
            b = ids.shape[0]
            if not lc.itc:  # ALBEF mines from the ITC similarities; without ITC, the in-batch ones
                sim_i2t = img_emb @ txt_emb.T / temp
                sim_t2i = sim_i2t.T
            out["itm"] = self.itm_with_hard_negatives(
                img, txt, attention, sim_i2t[:, :b], sim_t2i[:, :b], same
            )
        if lc.mlm:
            masked_ids, labels = losses.mask_tokens(
                ids, self.special_ids, self.mask_id, self.vocab_size, lc.mlm_prob
            )
            txt_masked = self.text(masked_ids, attention)
            out["mlm"] = losses.mlm_loss(self.mlm_head(self.fuse(txt_masked, img, attention)[0]), labels)
        total = sum(out.values())
        if mim.enabled:
            mask, targets = self.mim_mask_and_targets(images, img_m, txt_m, attention)
            out["mim"] = self.mim_loss(images, txt, attention, mask, targets)
            total = total + mim.weight * out["mim"]
            if mim.agreement and mim.target == "semantic":
                if view2 is None:
                    raise ValueError("the agreement loss needs view2, a second augmentation of the images")
                if len(local_views or ()) != mim.local_crops:
                    got = len(local_views or ())
                    raise ValueError(f"mim.local_crops is {mim.local_crops} but {got} local views were given")
                out["agr"] = self.global_agreement(img, img_m, view2, local_views)
                total = total + mim.agreement_weight * out["agr"]
        out["loss"] = total
        return out

    def itm_with_hard_negatives(self, img, txt, attention, sim_i2t, sim_t2i, same) -> torch.Tensor:
        """ALBEF's ITM: each pair, plus per image a hard negative caption and per caption a hard negative image
        drawn with probability ``softmax(sim)`` over the in-batch ITC similarities *divided by the learnable
        temperature* (ALBEF ``models/model_pretrain.py``: ``weights_i2t = softmax(sim_i2t[:, :bs])`` with
        ``sim_i2t = image_feat @ text_feat_all / self.temp``, ``temp`` initialised at 0.07): ``sim_i2t`` /
        ``sim_t2i`` ``(B, B)`` are those scaled similarities. Raw cosines in [-1, 1] would give weights within
        ~e^2 of each other (nearly uniform mining). ``same`` ``(B, B)`` marks pairs that count as matching and
        are never drawn (:func:`semmim.losses.hard_negative_index`); 2-way cross-entropy over the ``3B`` pairs."""
        with torch.no_grad():
            neg_txt = losses.hard_negative_index(sim_i2t.detach(), same)  # per image: a hard negative caption
            neg_img = losses.hard_negative_index(sim_t2i.detach(), same)  # per caption: a hard negative image
        t_all = torch.cat([txt, txt, txt[neg_txt]])
        i_all = torch.cat([img, img[neg_img], img])
        a_all = torch.cat([attention, attention, attention[neg_txt]])
        b = img.shape[0]
        labels = torch.cat([torch.ones(b), torch.zeros(2 * b)]).long().to(img.device)
        return losses.itm_loss(self.itm_logits(t_all, i_all, a_all), labels)

    @torch.no_grad()
    def _enqueue(self, img_emb_m: torch.Tensor, txt_emb_m: torch.Tensor, *extra: torch.Tensor) -> tuple:
        """Every rank's momentum features (gathered in rank order, ALBEF's ``concat_all_gather`` before
        ``_dequeue_and_enqueue``) written at the queue pointer, so every rank holds the same queue; the pointer
        moves on the device (no host sync). ``extra`` tensors (an id queue's ids) are gathered the same way and
        returned with the slots they go to: ``(slots, *gathered extra)``."""
        img_all, txt_all = all_gather(img_emb_m), all_gather(txt_emb_m)
        q, b = self.image_queue.shape[0], img_all.shape[0]
        idx = (self.queue_ptr + torch.arange(b, device=img_all.device)) % q
        self.image_queue[idx] = img_all.to(self.image_queue.dtype)
        self.text_queue[idx] = txt_all.to(self.text_queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + b) % q)
        return (idx, *(all_gather(x) for x in extra))

    @torch.no_grad()
    def _update_center(self, center: torch.Tensor, logits: torch.Tensor) -> None:
        """DINO's centre update with the batch mean over *every* rank (DINO ``update_center``: ``all_reduce`` of
        the batch centre, divided by the world size), so the centres stay identical across ranks."""
        mean = logits.detach().float().reshape(-1, logits.shape[-1]).mean(0)
        losses.update_center(center, all_mean(mean).unsqueeze(0), self.loss_cfg.mim.center_momentum)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


def _world() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@torch.no_grad()
def all_gather(x: torch.Tensor) -> torch.Tensor:
    """``x`` of every rank concatenated along dim 0 in rank order (no gradient); ``x`` itself outside DDP."""
    if _world() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(_world())]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts)


@torch.no_grad()
def all_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over the ranks (``x`` itself outside DDP)."""
    if _world() == 1:
        return x
    out = x.clone()
    torch.distributed.all_reduce(out)
    return out / _world()


def save_weights(model: SemMIMModel, path: str | Path) -> Path:
    """Write the pretrained weights (online + momentum model and centres; the ITC queues are left out) with the
    model config and vocabulary size, atomically (temp file + rename)."""
    weights = {k: v for k, v in model.state_dict().items() if k not in FRESH_STATE}
    payload = {"model": weights, "config": dataclasses.asdict(model.cfg), "vocab_size": model.vocab_size}
    return atomic_torch_save(payload, path)


def load_weights(model: SemMIMModel, path: str | Path) -> None:
    """Load weights written by :func:`save_weights` (or the ``model`` entry of a training checkpoint) into
    ``model``; only :data:`FRESH_STATE` keeps its fresh initialisation. Vocabulary rows may grow: a matrix whose first dimension is the
    file's vocabulary size gets the file's rows first and keeps fresh rows for the words a task adds (as BERT's
    ``resize_token_embeddings``). Anything else that does not fit raises :class:`ConfigError` naming the file and
    every missing / unexpected key and mismatching shape."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: pretrained SemMIM weights not found (init=...)")
    state = torch.load(path, map_location="cpu", weights_only=False)
    weights = state["model"] if isinstance(state, dict) and "model" in state else state
    weights = {k: v for k, v in weights.items() if k not in FRESH_STATE}
    old_vocab = int(state.get("vocab_size", weights["mlm_head.bias"].shape[0]))
    own = model.state_dict()
    ours = {k: v for k, v in own.items() if k not in FRESH_STATE}
    missing = sorted(set(ours) - set(weights))
    unexpected = sorted(set(weights) - set(ours))
    bad, grown = [], {}
    for key in sorted(set(ours) & set(weights)):
        have, want = weights[key].shape, ours[key].shape
        if have == want:
            grown[key] = weights[key]
        elif have[1:] == want[1:] and have[0] == old_vocab < want[0]:
            grown[key] = torch.cat([weights[key], ours[key][old_vocab:]])
        else:
            bad.append(f"{key}: file {tuple(have)} vs model {tuple(want)}")
    if missing or unexpected or bad:
        raise ConfigError(
            f"init={str(path)!r}: the checkpoint does not fit the model config (model.*): "
            f"{len(missing)} missing key(s) {missing[:8]}, {len(unexpected)} unexpected key(s) {unexpected[:8]}, "
            f"{len(bad)} shape mismatch(es) {bad[:8]}"
        )
    own.update(grown)
    model.load_state_dict(own)
