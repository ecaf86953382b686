"""The session-based recommenders, one ``nn.Module`` each, all scoring every item (full ranking).

Every model maps a :class:`~sbr_side_info.batch.SessionBatch` to logits ``(B, n_items - 1)`` over items 1..N (the
padding id 0 is never a candidate). Without side information: GRU4Rec, NARM, STAMP, SR-GNN. With side information:
FusionGRU4Rec (feature fusion: item + category + price embeddings), CoHHN-style price/interest model, MKM-SR-style
micro-behaviour model. Each ID-only model has a side-information twin: GRU4Rec -> FusionGRU4Rec, STAMP -> CoHHN,
SR-GNN -> MKM-SR.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sbr_side_info.batch import SessionBatch


def _last(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``hidden (B, L, d)`` at the last real position of each row -> ``(B, d)``."""
    idx = (mask.sum(1) - 1).clamp(min=0)
    return hidden[torch.arange(hidden.shape[0]), idx]


def run_gru(gru: nn.GRU, x: torch.Tensor, mask: torch.Tensor, packed: bool = True) -> torch.Tensor:
    """``gru`` over ``x (B, L, d)`` -> ``(B, L, h)``. ``packed``: as a packed sequence, so each row costs its own
    length, not the batch's longest (the same states at every real position; padded positions are 0)."""
    if not packed:
        return gru(x)[0]
    lengths = mask.sum(1).clamp(min=1).cpu()
    seq = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, _ = nn.utils.rnn.pad_packed_sequence(gru(seq)[0], batch_first=True, total_length=x.shape[1])
    return out


class SessionModel(nn.Module):
    """Shared parts: the item table (row 0 = padding) and the full-ranking scorer."""

    needs_graph = False
    uses = ("items",)
    bf16_scorer = False  # set by the training loop (TrainConfig.bf16_scorer)
    packed = True  # GRUs over packed sequences (run_gru)
    supports_sampled = True  # scores are session @ candidate_vectors(ids)^T (GRU4Rec's sampled losses apply)

    def __init__(self, n_items: int, dim: int) -> None:
        super().__init__()
        self.n_items, self.dim = n_items, dim
        self.item_emb = nn.Embedding(n_items, dim, padding_idx=0)

    def reset_uniform(self) -> None:
        """SR-GNN / NARM initialisation: every weight uniform in ``[-1/sqrt(d), 1/sqrt(d)]``."""
        bound = 1.0 / math.sqrt(self.dim)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def candidates(self) -> torch.Tensor:
        """Candidate item vectors ``(n_items - 1, d)``: items 1..N."""
        return self.item_emb.weight[1:]

    def candidate_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """The candidate vectors of 1-based item ``ids (M,)`` -> ``(M, d)`` (sampled losses score only these)."""
        return self.item_emb(ids)

    def session(self, batch: SessionBatch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def scores(self, session: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """``session (B, d) @ candidates (M, d)^T``. With ``bf16_scorer`` set and the model training, the product
        runs in bfloat16 (fp32 accumulation; fp32 weights and result): the full-ranking scorer is the largest
        matmul of a step. Evaluation always scores in fp32."""
        if self.bf16_scorer and self.training:
            return (session.to(torch.bfloat16) @ candidates.to(torch.bfloat16).T).float()
        return session @ candidates.T

    def forward(self, batch: SessionBatch) -> torch.Tensor:
        return self.scores(self.session(batch), self.candidates())


class GRU4Rec(SessionModel):
    """GRU4Rec (Hidasi et al., ICLR 2016, Sec. 3): a GRU over the clicks; its last state, projected, is the session.
    Trained with full softmax cross-entropy (``train.loss: ce``, as RecBole's ``loss_type: CE``) or with GRU4Rec's own
    sampled ranking losses (``train.loss: bpr-max | top1-max``, Hidasi & Karatzoglou 2018; :mod:`sbr_side_info.losses`)."""

    def __init__(self, n_items: int, dim: int = 100, dropout: float = 0.25) -> None:
        super().__init__(n_items, dim)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, dim, batch_first=True)
        self.out = nn.Linear(dim, dim)
        self.reset_uniform()

    def inputs(self, batch: SessionBatch) -> torch.Tensor:
        return self.item_emb(batch.items)

    def session(self, batch: SessionBatch) -> torch.Tensor:
        hidden = run_gru(self.gru, self.drop(self.inputs(batch)), batch.mask, self.packed)
        return self.out(_last(hidden, batch.mask))


class NARM(SessionModel):
    """NARM (Li et al., CIKM 2017, Sec. 3.3-3.4): global encoder c_g = h_t; local attention
    ``alpha_tj = v^T sigma(A1 h_t + A2 h_j)`` (Eq. 8), ``c_l = sum_j alpha_tj h_j``; bilinear decoder
    ``S_i = emb_i^T B [c_g; c_l]`` (Eq. 9). ``dim`` is the item embedding size and ``hidden`` the GRU's (the paper:
    50 and 100, Sec. 4.3; official code ``dim_proj=50, hidden_units=100``); ``B`` is ``(dim, 2 * hidden)``."""

    def __init__(
        self,
        n_items: int,
        dim: int = 100,
        dropout_emb: float = 0.25,
        dropout_ct: float = 0.5,
        hidden: int | None = None,
    ) -> None:
        super().__init__(n_items, dim)
        hidden = hidden or dim
        self.hidden = hidden
        self.drop_emb, self.drop_ct = nn.Dropout(dropout_emb), nn.Dropout(dropout_ct)
        self.gru = nn.GRU(dim, hidden, batch_first=True)
        self.a1 = nn.Linear(hidden, hidden, bias=False)
        self.a2 = nn.Linear(hidden, hidden, bias=False)
        self.v = nn.Linear(hidden, 1, bias=False)
        self.b = nn.Linear(2 * hidden, dim, bias=False)
        self.reset_uniform()

    def session(self, batch: SessionBatch) -> torch.Tensor:
        hidden = run_gru(self.gru, self.drop_emb(self.item_emb(batch.items)), batch.mask, self.packed)
        c_g = _last(hidden, batch.mask)
        alpha = self.v(torch.sigmoid(self.a1(c_g)[:, None] + self.a2(hidden))).squeeze(-1)
        c_l = (alpha * batch.mask).unsqueeze(-1).mul(hidden).sum(1)
        return self.b(self.drop_ct(torch.cat([c_g, c_l], dim=-1)))


class STAMP(SessionModel):
    """STAMP (Liu et al., KDD 2018, Sec. 3.3): attention ``alpha_i = w0^T sigma(W1 x_i + W2 x_t + W3 m_s + b_a)``
    (Eq. 7) with m_s the mean of the clicks, ``m_a = sum alpha_i x_i``; ``h_s = tanh(W_s m_a)``, ``h_t = tanh(W_t x_t)``;
    trilinear score ``<h_s, h_t, x_i>`` (Eq. 3-4)."""

    def __init__(self, n_items: int, dim: int = 100) -> None:
        super().__init__(n_items, dim)
        self.w1 = nn.Linear(dim, dim, bias=False)
        self.w2 = nn.Linear(dim, dim, bias=False)
        self.w3 = nn.Linear(dim, dim)
        self.w0 = nn.Linear(dim, 1, bias=False)
        self.mlp_s = nn.Linear(dim, dim)
        self.mlp_t = nn.Linear(dim, dim)
        self.reset_uniform()

    def inputs(self, batch: SessionBatch) -> torch.Tensor:
        return self.item_emb(batch.items)

    def readout(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).float()
        x_t = _last(x, mask)
        m_s = (x * m).sum(1) / m.sum(1).clamp(min=1)
        alpha = self.w0(torch.sigmoid(self.w1(x) + self.w2(x_t)[:, None] + self.w3(m_s)[:, None]))
        m_a = (alpha * x * m).sum(1)
        return torch.tanh(self.mlp_s(m_a)) * torch.tanh(self.mlp_t(x_t))

    def session(self, batch: SessionBatch) -> torch.Tensor:
        return self.readout(self.inputs(batch), batch.mask)


class GatedGraphLayer(nn.Module):
    """SR-GNN's gated graph step (Wu et al., AAAI 2019, Eq. 1-5): ``a = A [H W_in ; H W_out] + b``, then a GRU-style
    update of every node state."""

    def __init__(self, dim: int, steps: int = 1) -> None:
        super().__init__()
        self.steps = steps
        self.edge_in = nn.Linear(dim, dim)
        self.edge_out = nn.Linear(dim, dim)
        self.b_in = nn.Parameter(torch.zeros(dim))
        self.b_out = nn.Parameter(torch.zeros(dim))
        self.gate_input = nn.Linear(2 * dim, 3 * dim)
        self.gate_hidden = nn.Linear(dim, 3 * dim)

    def forward(
        self, adjacency: torch.Tensor, hidden: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``adjacency (B, N, 2N)``, ``hidden (B, N, d)``; ``valid (B, N)``: the real (non-padding) nodes. With
        ``valid`` the dense layers run on the real nodes only (a padding node has no edge, so no real node's state
        depends on it; padding nodes come back as 0); the states of real nodes are the same as without it."""
        if valid is None:
            return self._steps(adjacency, hidden)
        states = hidden[valid]  # (T, d): the real nodes, row-major
        for _ in range(self.steps):
            e_in = hidden.new_zeros(hidden.shape[0], hidden.shape[1], self.edge_in.out_features)
            e_out = torch.zeros_like(e_in)
            e_in[valid] = self.edge_in(states)
            e_out[valid] = self.edge_out(states)
            n = hidden.shape[1]
            a_in = (adjacency[:, :, :n] @ e_in)[valid] + self.b_in
            a_out = (adjacency[:, :, n:] @ e_out)[valid] + self.b_out
            states = self._gru(torch.cat([a_in, a_out], dim=-1), states)
            hidden = hidden.new_zeros(hidden.shape).index_put((valid.nonzero(as_tuple=True)), states)
        return hidden

    def _gru(self, inputs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        gi = self.gate_input(inputs)
        gh = self.gate_hidden(hidden)
        i_r, i_z, i_n = gi.chunk(3, -1)
        h_r, h_z, h_n = gh.chunk(3, -1)
        reset = torch.sigmoid(i_r + h_r)
        update = torch.sigmoid(i_z + h_z)
        new = torch.tanh(i_n + reset * h_n)
        return new + update * (hidden - new)  # = (1 - z) * new + z * hidden (Eq. 5)

    def _steps(self, adjacency: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        n = hidden.shape[1]
        for _ in range(self.steps):
            a_in = adjacency[:, :, :n] @ self.edge_in(hidden) + self.b_in
            a_out = adjacency[:, :, n:] @ self.edge_out(hidden) + self.b_out
            hidden = self._gru(torch.cat([a_in, a_out], dim=-1), hidden)
        return hidden


class SRGNN(SessionModel):
    """SR-GNN (Wu et al., AAAI 2019): gated GNN over the session graph (Sec. 3.2), soft-attention readout
    ``alpha_i = q^T sigma(W1 v_n + W2 v_i + c)``, ``s_g = sum alpha_i v_i`` (Eq. 6), hybrid
    ``s_h = W3 [s_l; s_g]`` (Eq. 7), scores ``s_h^T v_i`` (Eq. 8)."""

    needs_graph = True

    def __init__(self, n_items: int, dim: int = 100, steps: int = 1) -> None:
        super().__init__(n_items, dim)
        self.gnn = GatedGraphLayer(dim, steps)
        self.w1 = nn.Linear(dim, dim)
        self.w2 = nn.Linear(dim, dim)
        self.q = nn.Linear(dim, 1, bias=False)
        self.w3 = nn.Linear(2 * dim, dim)
        self.reset_uniform()

    def node_inputs(self, batch: SessionBatch) -> torch.Tensor:
        return self.item_emb(batch.nodes)

    def sequence_states(self, batch: SessionBatch) -> torch.Tensor:
        """Node states after the GNN, laid back onto the click sequence: ``(B, L, d)``."""
        valid = batch.nodes > 0 if self.packed else None  # item ids are >= 1; 0 pads the node list
        nodes = self.gnn(batch.adjacency, self.node_inputs(batch), valid)
        return torch.gather(nodes, 1, batch.alias.unsqueeze(-1).expand(-1, -1, nodes.shape[-1]))

    def readout(self, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s_l = _last(seq, mask)
        alpha = self.q(torch.sigmoid(self.w1(s_l)[:, None] + self.w2(seq)))
        s_g = (alpha * seq * mask.unsqueeze(-1)).sum(1)
        return self.w3(torch.cat([s_l, s_g], dim=-1))

    def session(self, batch: SessionBatch) -> torch.Tensor:
        return self.readout(self.sequence_states(batch), batch.mask)


# ------------------------------------------------------------------------------------------ side information


class ItemFeatures(nn.Module):
    """``e_i = e_id(i) + e_cat(c_i) + e_price(p_i)``: the feature-fusion item representation (survey Sec. 4.1,
    "feature fusion"); channels absent from the data are left out."""

    def __init__(
        self,
        dim: int,
        item_category: list[int] | None,
        n_categories: int,
        item_price: list[int] | None,
        price_levels: int,
    ) -> None:
        super().__init__()
        self.cat_emb = self.price_emb = None
        if item_category is not None:
            self.register_buffer("item_category", torch.tensor(item_category), persistent=False)
            self.cat_emb = nn.Embedding(n_categories, dim, padding_idx=0)
        if item_price is not None:
            self.register_buffer("item_price", torch.tensor(item_price), persistent=False)
            self.price_emb = nn.Embedding(price_levels + 1, dim, padding_idx=0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = 0
        if self.cat_emb is not None:
            out = out + self.cat_emb(self.item_category[ids])
        if self.price_emb is not None:
            out = out + self.price_emb(self.item_price[ids])
        return out


class FusionGRU4Rec(GRU4Rec):
    """GRU4Rec with feature fusion (GRU4Rec with features, Hidasi et al. RecSys 2016 "p-RNN", and the survey's
    feature-fusion family): inputs and candidates are ``e_id + e_cat + e_price``, so a rarely seen item borrows the
    statistics of its category and price level."""

    def __init__(
        self,
        n_items: int,
        dim: int = 100,
        dropout: float = 0.25,
        *,
        item_category=None,
        n_categories: int = 0,
        item_price=None,
        price_levels: int = 0,
    ) -> None:
        super().__init__(n_items, dim, dropout)
        self.features = ItemFeatures(dim, item_category, n_categories, item_price, price_levels)
        self.reset_uniform()

    def inputs(self, batch: SessionBatch) -> torch.Tensor:
        return self.item_emb(batch.items) + self.features(batch.items)

    def candidates(self) -> torch.Tensor:
        ids = torch.arange(1, self.n_items, device=self.item_emb.weight.device)
        return self.item_emb.weight[1:] + self.features(ids)

    def candidate_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        return self.item_emb(ids) + self.features(ids)


class CoHHN(STAMP):
    """CoHHN-style price- and interest-aware model (Zhang et al., SIGIR 2022, "Price DOES Matter!"), simplified:
    the interest channel reads ``e_id + e_cat`` and the price channel ``e_price + e_cat`` with STAMP's attention
    readout (in place of the heterogeneous hypergraph); co-guided learning gates each preference by the other
    (Sec. 3.4: ``I' = I * sigmoid(W_p P)``, ``P' = P * sigmoid(W_i I)``); prediction ``z_j = I'^T x_j + P'^T p_j``
    (Sec. 3.5), with ``x_j`` the item's interest vector and ``p_j`` its price-level vector."""

    supports_sampled = False  # two scorers (interest and price): trained with cross-entropy only

    def __init__(
        self,
        n_items: int,
        dim: int = 100,
        *,
        item_category=None,
        n_categories: int = 0,
        item_price=None,
        price_levels: int = 0,
    ) -> None:
        super().__init__(n_items, dim)
        if item_category is None:
            raise ValueError("CoHHN needs item categories (the data has none)")
        self.cat = ItemFeatures(dim, item_category, n_categories, None, 0)
        self.price = ItemFeatures(dim, None, 0, item_price, price_levels) if item_price is not None else None
        self.price_readout = STAMP(2, dim) if self.price is not None else None
        self.gate_i = nn.Linear(dim, dim)
        self.gate_p = nn.Linear(dim, dim)
        self.reset_uniform()

    def _interest(self, ids: torch.Tensor) -> torch.Tensor:
        return self.item_emb(ids) + self.cat(ids)

    def _price(self, ids: torch.Tensor) -> torch.Tensor:
        return self.price(ids) + self.cat(ids)

    def forward(self, batch: SessionBatch) -> torch.Tensor:
        ids = torch.arange(1, self.n_items, device=self.item_emb.weight.device)
        interest = self.readout(self._interest(batch.items), batch.mask)
        if self.price is None:
            return self.scores(interest, self._interest(ids))
        price = self.price_readout.readout(self._price(batch.items), batch.mask)
        interest_g = interest * torch.sigmoid(self.gate_p(price))
        price_g = price * torch.sigmoid(self.gate_i(interest))
        return self.scores(interest_g, self._interest(ids)) + self.scores(price_g, self._price(ids))


class MKMSR(SRGNN):
    """MKM-SR-style micro-behaviour model (Meng et al., SIGIR 2020, Sec. 4.2): the item sequence through SR-GNN's
    gated GNN, the operation sequence (view / click / cart / fav / buy) through a GRU (Eq. 9-10), each micro-behaviour
    ``[item state; operation state]`` (Eq. 11) read out with SR-GNN's attention; the knowledge-graph multi-task
    part of the paper is not included. With one behaviour type it reduces to SR-GNN plus a constant channel."""

    def __init__(self, n_items: int, dim: int = 100, steps: int = 1, *, n_ops: int = 6) -> None:
        super().__init__(n_items, dim, steps)
        self.op_emb = nn.Embedding(max(n_ops, 6), dim, padding_idx=0)
        self.op_gru = nn.GRU(dim, dim, batch_first=True)
        self.merge = nn.Linear(2 * dim, dim)
        self.reset_uniform()

    def session(self, batch: SessionBatch) -> torch.Tensor:
        items = self.sequence_states(batch)
        ops = batch.ops if batch.ops is not None else batch.mask.long()
        op_states = run_gru(self.op_gru, self.op_emb(ops), batch.mask, self.packed)
        micro = self.merge(torch.cat([items, op_states], dim=-1))
        return self.readout(micro, batch.mask)


MODELS: dict[str, type[SessionModel]] = {
    "GRU4Rec": GRU4Rec,
    "NARM": NARM,
    "STAMP": STAMP,
    "SR-GNN": SRGNN,
    "FusionGRU4Rec": FusionGRU4Rec,
    "CoHHN": CoHHN,
    "MKM-SR": MKMSR,
}
SIDE_INFO_MODELS = ("FusionGRU4Rec", "CoHHN", "MKM-SR")
TWIN = {"FusionGRU4Rec": "GRU4Rec", "CoHHN": "STAMP", "MKM-SR": "SR-GNN"}


def build_model(name: str, data, dim: int = 100, hidden: int | None = None) -> SessionModel:
    """Instantiate ``name`` for a :class:`~sbr_side_info.schema.Prepared` data set (``hidden``: NARM's GRU size,
    None = ``dim``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    cls = MODELS[name]
    if name in ("FusionGRU4Rec", "CoHHN"):
        if data.item_category is None and data.item_price_level is None:
            raise ValueError(f"{name} needs item side information; data set {data.name!r} has none")
        return cls(
            data.n_items,
            dim,
            item_category=data.item_category,
            n_categories=data.n_categories,
            item_price=data.item_price_level,
            price_levels=data.price_levels,
        )
    if name == "MKM-SR":
        return cls(data.n_items, dim, n_ops=data.n_ops)
    if name == "NARM":
        return cls(data.n_items, dim, hidden=hidden)
    return cls(data.n_items, dim)
