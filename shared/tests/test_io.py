import json

import pytest
import torch

from paperlab.io import (
    JsonlCache,
    atomic_write_json,
    atomic_write_text,
    load_checkpoint,
    read_json,
    save_checkpoint,
)
from paperlab.seed import seed_everything


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "m.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert len(list(tmp_path.iterdir())) == 1


def test_read_json_names_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "a": 1,\n  oops\n}')
    with pytest.raises(ValueError, match=r"bad\.json: invalid JSON at line 3, column 3"):
        read_json(bad)


def test_jsonl_cache_resumes_and_tolerates_a_torn_last_line(tmp_path):
    path = tmp_path / "cache.jsonl"
    cache = JsonlCache(path)
    for i in range(3):
        cache.append({"key": f"k{i}", "value": i})
    with path.open("a") as handle:  # an interrupted write
        handle.write('{"key": "k3", "val')
    again = JsonlCache(path)
    assert len(again) == 3 and "k2" in again and "k3" not in again
    assert again.get("k1")["value"] == 1
    again.append({"key": "k3", "value": 3})
    assert [r["value"] for r in JsonlCache(path)] == [0, 1, 2, 3]


def test_jsonl_cache_rejects_corruption_in_the_middle(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"key": 1}\nnot json\n{"key": 2}\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        JsonlCache(path)
    with pytest.raises(KeyError, match="no 'key' field"):
        JsonlCache(tmp_path / "d.jsonl").append({"id": 1})


def _train(steps, model, opt, start=0):
    losses = []
    for _ in range(start, steps):
        x = torch.randn(8, 4)
        loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_checkpoint_resume_equals_uninterrupted_run(tmp_path):
    seed_everything(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    full = _train(10, model, opt)
    final = model.weight.detach().clone()

    seed_everything(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    first = _train(4, model, opt)
    save_checkpoint(tmp_path / "ck.pt", model=model, optimizer=opt, step=4)
    _ = torch.randn(100)  # the interrupted process drew more random numbers before dying

    model2 = torch.nn.Linear(4, 1)
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.1)
    state = load_checkpoint(tmp_path / "ck.pt", model=model2, optimizer=opt2)
    rest = _train(10, model2, opt2, start=state["step"])
    assert first + rest == pytest.approx(full, abs=0)
    assert torch.equal(model2.weight, final)


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
    save_checkpoint(tmp_path / "x.pt", step=1)
    with pytest.raises(KeyError, match="no 'model' state"):
        load_checkpoint(tmp_path / "x.pt", model=torch.nn.Linear(1, 1))


def test_jsonl_rows_carry_their_line_numbers_and_bad_lines_are_named(tmp_path) -> None:
    from paperlab.io import DataError, iter_jsonl, read_jsonl

    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (3, {"a": 2})]
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"rows\.jsonl:2: expected a JSON object, got list"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(DataError, match=r"rows\.jsonl:2: not valid JSON"):
        read_jsonl(path)
    with pytest.raises(DataError, match="no such file"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_jsonl_lines_split_at_newline_only(tmp_path) -> None:
    """U+0085, U+2028 and form feed are legal unescaped inside JSON strings: str.splitlines() would break there."""
    from paperlab.io import JsonlCache, read_jsonl

    rows = [{"key": "a", "text": "one\x85two"}, {"key": "b", "text": "x\u2028y\x0cz"}]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert read_jsonl(path) == rows
    cache = JsonlCache(tmp_path / "cache.jsonl")
    cache.extend(rows)
    again = JsonlCache(tmp_path / "cache.jsonl")
    assert again.get("b") == rows[1] and len(again) == 2


def test_jsonl_errors_name_encoding_and_arrays(tmp_path) -> None:
    from paperlab.io import DataError, read_jsonl

    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"a": 1}\n{"a": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"latin\.jsonl:2: not UTF-8"):
        read_jsonl(latin)
    array = tmp_path / "array.jsonl"
    array.write_text('[{"a": 1},\n {"a": 2}]\n')
    with pytest.raises(DataError, match=r"array\.jsonl:1: .*JSON array, JSONL holds one object per line"):
        read_jsonl(array)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n{"a": 2}\r\n')
    assert read_jsonl(bom) == [{"a": 1}, {"a": 2}]


def test_atomic_writes_respect_the_umask(tmp_path) -> None:
    import os
    import stat

    from paperlab.io import atomic_write_text

    old = os.umask(0o022)
    try:
        mode = stat.S_IMODE(atomic_write_text(tmp_path / "results.md", "x").stat().st_mode)
        plain = tmp_path / "plain.md"
        plain.write_text("x")
        assert mode == stat.S_IMODE(plain.stat().st_mode) == 0o644
        os.umask(0o077)
        assert stat.S_IMODE(atomic_write_text(tmp_path / "private.md", "x").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_derived_key_changes_with_every_setting_and_input(tmp_path) -> None:
    import dataclasses
    import os

    from paperlab.io import derived_key

    @dataclasses.dataclass
    class Prep:
        name: str = "a"
        min_len: int = 2

    data = tmp_path / "train.txt"
    data.write_text("1 2 3\n")
    base = derived_key(Prep(), [data], drop=["name"])
    assert derived_key(Prep(name="b"), [data], drop=["name"]) == base  # dropped: does not change the result
    assert derived_key(Prep(min_len=3), [data], drop=["name"]) != base
    other = tmp_path / "other.txt"
    other.write_text("1 2 3\n")
    assert derived_key(Prep(), [other], drop=["name"]) != base  # another file, even with the same content
    assert derived_key(Prep(), [tmp_path / "absent.txt"]) != derived_key(Prep(), [data])
    data.write_text("1 2 3 4\n")
    assert derived_key(Prep(), [data], drop=["name"]) != base
    before = derived_key(Prep(), [tmp_path])
    os.utime(other, ns=(1, 1))
    assert derived_key(Prep(), [tmp_path]) != before  # a folder's files count one by one
    assert len(base) == 12


def test_a_missing_file_is_a_data_error_that_file_not_found_still_catches(tmp_path):
    from paperlab.config import UserError
    from paperlab.io import MissingFileError, existing_file, read_jsonl

    with pytest.raises(MissingFileError, match=r"data\.path: .*absent\.jsonl: no such file") as caught:
        existing_file(tmp_path / "absent.jsonl", "data.path")
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, UserError)
    with pytest.raises(FileNotFoundError, match="is a folder, expected a file"):
        read_jsonl(tmp_path)
    with pytest.raises(UserError, match=r"absent\.jsonl: no such file"):
        read_jsonl(tmp_path / "absent.jsonl")
