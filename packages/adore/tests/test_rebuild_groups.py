"""Rebuilding takes each picked token with its released left context, whole or not at all: on the old code a pick
whose context no longer fitted in R was rebuilt alone (a value token without its key); on a recall variant (4 queries
per sequence) each of the 19 errors at 25 % was a value rebuilt without its key, and with whole groups the recall
table at 25 % rose from 95.0 to 96.3 (README)."""

from __future__ import annotations

import torch

from adore.decode import rebuild_groups, with_context


def test_a_pick_whose_context_does_not_fit_is_skipped_not_cut() -> None:
    released = torch.tensor([3, 7, 8, 12])  # positions in the released pool; 11 is cached
    pick = torch.tensor([3, 2])  # best first: position 12 (no released left neighbour), then 8 (7 released)
    assert with_context(released, pick, context=1, limit=2).tolist() == [3]  # 8 would come without 7
    assert with_context(released, pick, context=1, limit=3).tolist() == [3, 2, 1]
    assert with_context(released, torch.tensor([2, 3]), context=1, limit=2).tolist() == [2, 1]


def test_groups_skip_to_a_later_pick_that_fits_and_cut_a_group_only_when_alone() -> None:
    assert rebuild_groups([5, 9, 4], [[6], [], []], limit=2) == [5, 6]
    assert rebuild_groups([5, 9, 4], [[6, 7], [], []], limit=2) == [5, 6]  # alone larger than R: cut to R
    assert rebuild_groups([9, 5, 4], [[], [6], []], limit=2) == [9, 4]  # 5 + 6 do not fit after 9: skipped
    assert rebuild_groups([5, 6], [[6], []], limit=3) == [5, 6]  # a neighbour that is also a pick counts once
