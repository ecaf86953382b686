"""Published numbers we compare with (P@20 = HR@20 and MRR@20, in percent).

- SR-GNN paper (Wu et al., AAAI 2019), Table 2: Diginetica and YooChoose 1/64 (the SR-GNN protocol).
- GCE-GNN paper (Wang et al., SIGIR 2020), Table 3: Diginetica, Tmall, Nowplaying on the GCE-GNN splits we ship
  (its baselines re-run by the GCE-GNN authors). Transcribed by hand from the paper.
"""

from __future__ import annotations

SRGNN_TABLE2 = "SR-GNN paper (AAAI 2019) Table 2"
GCEGNN_TABLE3 = "GCE-GNN paper (SIGIR 2020) Table 3"

# (source, data set, model) -> (P@20, MRR@20)
PUBLISHED: dict[tuple[str, str, str], tuple[float, float]] = {
    (SRGNN_TABLE2, "diginetica", "GRU4Rec"): (29.45, 8.33),
    (SRGNN_TABLE2, "diginetica", "NARM"): (49.70, 16.17),
    (SRGNN_TABLE2, "diginetica", "STAMP"): (45.64, 14.32),
    (SRGNN_TABLE2, "diginetica", "SR-GNN"): (50.73, 17.59),
    (SRGNN_TABLE2, "yoochoose1_64", "GRU4Rec"): (60.64, 22.89),
    (SRGNN_TABLE2, "yoochoose1_64", "NARM"): (68.32, 28.63),
    (SRGNN_TABLE2, "yoochoose1_64", "STAMP"): (68.74, 29.67),
    (SRGNN_TABLE2, "yoochoose1_64", "SR-GNN"): (70.57, 30.94),
    (GCEGNN_TABLE3, "diginetica", "GRU4Rec"): (30.79, 8.22),
    (GCEGNN_TABLE3, "diginetica", "NARM"): (48.32, 16.00),
    (GCEGNN_TABLE3, "diginetica", "STAMP"): (46.62, 15.13),
    (GCEGNN_TABLE3, "diginetica", "SR-GNN"): (51.26, 17.78),
    (GCEGNN_TABLE3, "diginetica", "GCE-GNN"): (54.22, 19.04),
    (GCEGNN_TABLE3, "Tmall", "GRU4Rec"): (10.93, 5.89),
    (GCEGNN_TABLE3, "Tmall", "NARM"): (23.30, 10.70),
    (GCEGNN_TABLE3, "Tmall", "STAMP"): (26.47, 13.36),
    (GCEGNN_TABLE3, "Tmall", "SR-GNN"): (27.57, 13.72),
    (GCEGNN_TABLE3, "Tmall", "GCE-GNN"): (33.42, 15.42),
    (GCEGNN_TABLE3, "Nowplaying", "GRU4Rec"): (7.92, 4.48),
    (GCEGNN_TABLE3, "Nowplaying", "NARM"): (18.59, 6.93),
    (GCEGNN_TABLE3, "Nowplaying", "STAMP"): (17.66, 6.88),
    (GCEGNN_TABLE3, "Nowplaying", "SR-GNN"): (18.87, 7.47),
    (GCEGNN_TABLE3, "Nowplaying", "GCE-GNN"): (22.37, 8.40),
}


def published_for(dataset: str, model: str) -> list[tuple[str, float, float]]:
    """``[(source, P@20, MRR@20), ...]`` for a data set and model (empty if unpublished)."""
    return [(src, p, m) for (src, d, mdl), (p, m) in PUBLISHED.items() if d == dataset and mdl == model]
