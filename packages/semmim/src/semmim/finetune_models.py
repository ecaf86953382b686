"""The downstream models, each a wrapper around a (pretrained) :class:`semmim.vlp.SemMIMModel` held as ``vlp``
whose ``forward`` returns its losses (``loss`` = what :func:`semmim.train.fit` minimises):

- :class:`RetrievalFinetuner`: ITC + ITM with hard negatives, positives by image (ALBEF, Li et al., NeurIPS 2021,
  Sec. 5 "image-text retrieval"; its ``models/model_retrieval.py``), without MLM / MIM / momentum distillation;
- :class:`VQAClassifier`: an answer classifier over the fusion encoder's text [CLS] trained with binary
  cross-entropy against VQA soft scores (**our choice**, as ViLT / METER / VLMo; ALBEF and BLIP generate the answer
  with a decoder instead);
- :class:`CaptionDecoder`: a causal Transformer decoder cross-attending to the image encoder's tokens, teacher-forced
  LM loss, greedy or beam decoding (**our choice** of a small fresh decoder; BLIP fine-tunes a BERT-initialised
  decoder).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semmim.model import encode_image
from semmim.vlp import SemMIMModel


def multi_positive_itc(sim_i2t: torch.Tensor, sim_t2i: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """ITC with every caption of the same image as a positive (ALBEF ``model_retrieval.py``: ``sim_targets =
    eq(idx, idx_all) / sum``): ``1/2 [mean_i H(y_i, softmax(sim_i2t_i)) + mean_t H(y_t, softmax(sim_t2i_t))]`` with
    ``y`` the rows of ``positive`` ``(B, B + Q)`` normalised to sum 1. Equals :func:`semmim.losses.itc_loss` when
    the only positive of row i is column i. Similarities already divided by the temperature."""
    targets = positive.float() / positive.float().sum(1, keepdim=True)
    i2t = -(targets * F.log_softmax(sim_i2t, dim=1)).sum(1).mean()
    t2i = -(targets * F.log_softmax(sim_t2i, dim=1)).sum(1).mean()
    return (i2t + t2i) / 2


class RetrievalFinetuner(nn.Module):
    """ALBEF's retrieval fine-tuning (Sec. 5): ITC (in-batch, or against the momentum queue when
    ``vlp.loss_cfg.itc_queue > 0``, with the image id of every queued feature) + ITM on hard negatives drawn by ITC
    similarity, never from the same image or an identical caption. ``forward(images, ids, attention, image_ids)``."""

    def __init__(self, vlp: SemMIMModel) -> None:
        super().__init__()
        self.vlp = vlp
        self.register_buffer("id_queue", torch.full((vlp.image_queue.shape[0],), -1, dtype=torch.long))

    def forward(self, images, ids, attention, image_ids) -> dict[str, torch.Tensor]:
        m = self.vlp
        img, txt, img_emb, txt_emb = m.encode(images, ids, attention)
        temp = m.log_temp.exp().clamp(0.001, 0.5)
        positive = image_ids.unsqueeze(1) == image_ids.unsqueeze(0)
        if m.loss_cfg.itc_queue:
            with torch.no_grad():
                _, _, img_emb_m, txt_emb_m = m.encode(images, ids, attention, momentum=True)
            sim_i2t = img_emb @ torch.cat([txt_emb_m, m.text_queue]).T / temp
            sim_t2i = txt_emb @ torch.cat([img_emb_m, m.image_queue]).T / temp
            everything = torch.cat([image_ids, self.id_queue])
            itc = multi_positive_itc(sim_i2t, sim_t2i, image_ids.unsqueeze(1) == everything.unsqueeze(0))
            slots, ids_all = m._enqueue(img_emb_m, txt_emb_m, image_ids)  # every rank's, as the features
            self.id_queue[slots] = ids_all
        else:
            sim_i2t = img_emb @ txt_emb.T / temp
            sim_t2i = sim_i2t.T
            itc = multi_positive_itc(sim_i2t, sim_t2i, positive)
        same = positive | (ids.unsqueeze(1) == ids.unsqueeze(0)).all(-1)
        b = ids.shape[0]  # ALBEF mines the ITM negatives from the temperature-scaled ITC similarities
        itm = m.itm_with_hard_negatives(img, txt, attention, sim_i2t[:, :b], sim_t2i[:, :b], same)
        return {"itc": itc, "itm": itm, "loss": itc + itm}


def vqa_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of every answer's logit against its soft score ``(B, A)``, summed over answers and
    averaged over questions (soft scores as sigmoid targets: Teney et al., "Tips and Tricks for Visual Question
    Answering", CVPR 2018; ViLT's ``binary_cross_entropy_with_logits(...) * A``)."""
    return F.binary_cross_entropy_with_logits(logits, targets) * targets.shape[1]


class VQAClassifier(nn.Module):
    """Answer classifier: MLP ``Linear(D, 2D) - LayerNorm - GELU - Linear(2D, A)`` (ViLT / METER's VQA head) on the
    fusion encoder's text [CLS] for the question fused with the image. ``forward(images, ids, attention, targets)``
    with ``targets`` the soft scores ``(B, A)``."""

    def __init__(self, vlp: SemMIMModel, answers: int) -> None:
        super().__init__()
        width = vlp.cfg.text_width
        self.vlp = vlp
        self.head = nn.Sequential(
            nn.Linear(width, 2 * width), nn.LayerNorm(2 * width), nn.GELU(), nn.Linear(2 * width, answers)
        )

    def logits(self, images, ids, attention) -> torch.Tensor:
        """``(B, A)`` answer logits."""
        img = encode_image(self.vlp.vision, images)
        return self.head(self.vlp.fuse(self.vlp.text(ids, attention), img, attention)[0][:, 0])

    def forward(self, images, ids, attention, targets) -> dict[str, torch.Tensor]:
        loss = vqa_loss(self.logits(images, ids, attention), targets)
        return {"vqa": loss, "loss": loss}


def word_embeddings(vlp: SemMIMModel) -> torch.Tensor:
    """The text encoder's token embedding matrix ``(V, D_t)`` (tiny encoder or hub BERT)."""
    text = vlp.text
    if hasattr(text, "tokens"):
        return text.tokens.weight
    return text.model.get_input_embeddings().weight


class CaptionDecoder(nn.Module):
    """A pre-LN Transformer decoder (``width``, ``depth``, ``heads``): causal self-attention over the caption so far,
    cross-attention to the image encoder's tokens (projected to ``width``), an LM head tied to the token embedding.
    Fresh weights, except the token embedding, copied from the pretrained text encoder when its shape fits (same
    vocabulary, ``width`` = text width). ``forward(images, ids, attention)``: teacher-forced next-token
    cross-entropy on the caption tokens (BLIP's language-modelling loss, Li et al., ICML 2022, Sec. 3.2, without
    label smoothing), ``ids`` = ``[BOS] w1 .. wn [EOS] [PAD]..``."""

    def __init__(
        self, vlp: SemMIMModel, width: int, depth: int, heads: int, max_len: int, bos: int, eos: int, pad: int
    ) -> None:
        super().__init__()
        self.vlp, self.bos, self.eos, self.pad = vlp, bos, eos, pad
        vocab = vlp.vocab_size
        self.embed = nn.Embedding(vocab, width)
        self.embedding_from_text = tuple(word_embeddings(vlp).shape) == (vocab, width)
        if self.embedding_from_text:
            self.embed.weight.data.copy_(word_embeddings(vlp).detach())
        self.positions = nn.Parameter(torch.randn(max_len, width) * 0.02)
        self.memory = nn.Linear(vlp.vision.embed_dim, width)
        layer = nn.TransformerDecoderLayer(
            width, heads, 4 * width, 0.0, "gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerDecoder(layer, depth)
        self.norm = nn.LayerNorm(width)
        self.lm = nn.Linear(width, vocab, bias=False)
        self.lm.weight = self.embed.weight

    def image_memory(self, images: torch.Tensor) -> torch.Tensor:
        return self.memory(encode_image(self.vlp.vision, images))

    def logits(self, memory: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``(B, L, V)`` for every prefix of ``ids`` ``(B, L)``."""
        n = ids.shape[1]
        causal = torch.triu(torch.ones(n, n, dtype=torch.bool, device=ids.device), 1)
        x = self.embed(ids) + self.positions[:n]
        return self.lm(
            self.norm(
                self.layers(
                    x, memory, tgt_mask=causal, tgt_key_padding_mask=ids == self.pad, tgt_is_causal=True
                )
            )
        )

    def forward(self, images, ids, attention) -> dict[str, torch.Tensor]:
        logits = self.logits(self.image_memory(images), ids[:, :-1])
        labels = ids[:, 1:].masked_fill(~attention[:, 1:], -100)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        return {"lm": loss, "loss": loss}

    @torch.no_grad()
    def generate(self, images: torch.Tensor, max_len: int, beams: int = 1) -> list[list[int]]:
        """Token ids of one caption per image (without BOS / EOS): greedy for ``beams == 1``, else beam search
        keeping the ``beams`` best partial captions by summed log-probability; a finished caption is scored by its
        summed log-probability over its length (length penalty 1, the Hugging Face default BLIP decodes with;
        BLIP uses 3 beams)."""
        memory = self.image_memory(images)
        if beams == 1:
            seq = torch.full((images.shape[0], 1), self.bos, dtype=torch.long, device=images.device)
            done = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
            for _ in range(max_len - 1):
                nxt = self.logits(memory, seq)[:, -1].argmax(-1).masked_fill(done, self.pad)
                seq = torch.cat([seq, nxt[:, None]], 1)
                done |= nxt == self.eos
                if done.all():
                    break
            return [self._strip(row.tolist()) for row in seq]
        return [self._beam(memory[i : i + 1], max_len, beams) for i in range(images.shape[0])]

    def _beam(self, memory: torch.Tensor, max_len: int, beams: int) -> list[int]:
        alive = [([self.bos], 0.0)]
        finished: list[tuple[list[int], float]] = []
        for _ in range(max_len - 1):
            if not alive:
                break
            seqs = torch.tensor([s for s, _ in alive], device=memory.device)
            logp = self.logits(memory.expand(len(alive), -1, -1), seqs)[:, -1].log_softmax(-1)
            scores = torch.tensor([s for _, s in alive], device=memory.device)[:, None] + logp
            top = scores.flatten().topk(beams)
            alive = []
            for value, flat in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                row, token = divmod(flat, logp.shape[1])
                seq = [*seqs[row].tolist(), token]
                if token == self.eos:
                    finished.append((seq, value / (len(seq) - 1)))
                else:
                    alive.append((seq, value))
        best = max(finished or [(s, v / (len(s) - 1)) for s, v in alive], key=lambda item: item[1])
        return self._strip(best[0])

    def _strip(self, seq: list[int]) -> list[int]:
        out = []
        for token in seq[1:]:
            if token in (self.eos, self.pad):
                break
            out.append(token)
        return out
