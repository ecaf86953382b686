"""The t2i error breakdown on hand-made scenes: wrong places, swapped bindings, other attributes, identical ties."""

import pytest
import torch

from semmim.data import CaptionSet, SceneObject, caption_of
from semmim.evaluate import error_kinds


def scene(*objects: tuple[str, str, str, int]) -> list[SceneObject]:
    return [SceneObject(*o) for o in objects]


def corpus(*scenes: list[SceneObject]) -> CaptionSet:
    return CaptionSet(torch.zeros(len(scenes), 3, 8, 8), [caption_of(s) for s in scenes], list(scenes))


GOLD = scene(("small", "red", "circle", 0), ("large", "blue", "square", 3))
OTHERS = {
    "place": scene(("small", "red", "circle", 1), ("large", "blue", "square", 3)),  # other quadrant set
    "swapped": scene(("small", "red", "circle", 3), ("large", "blue", "square", 0)),  # same objects, swapped
    "bind": scene(("small", "blue", "circle", 0), ("large", "red", "square", 3)),  # colours re-paired
    "attr": scene(("small", "green", "circle", 0), ("large", "blue", "square", 3)),
    "same": scene(("small", "red", "circle", 0), ("large", "blue", "square", 3)),
}


@pytest.mark.parametrize(
    ("other", "kind"),
    [("place", "place"), ("swapped", "place"), ("bind", "bind"), ("attr", "attr"), ("same", "same")],
)
def test_each_kind_of_wrong_top1(other, kind):
    # query 0 (gold scene) retrieves image 1; query 1 retrieves itself (correct)
    got = error_kinds([1, 1], corpus(GOLD, OTHERS[other]))
    assert got == {k: (50.0 if k == kind else 0.0) for k in ("place", "bind", "attr", "same")}


def test_all_correct_gives_no_errors():
    assert set(error_kinds([0, 1], corpus(GOLD, OTHERS["attr"])).values()) == {0.0}


def test_probe_of_an_unknown_attribute_names_it():
    from paperlab.config import ConfigError
    from semmim.evaluate import attribute_probe

    with pytest.raises(ConfigError, match="attribute"):
        attribute_probe(None, None, None, "size")
