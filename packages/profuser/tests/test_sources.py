"""Hub sources load natively: mpt-7b-8k-chat's config.json points at MosaicML's remote code (``auto_map``), which
needs einops and an old cache API; transformers' own ``mpt`` reads the same checkpoint without it."""

import json

from transformers import MptConfig, MptForCausalLM

from paperlab.config import compose, from_config
from paperlab.models import train_tiny_tokenizer
from profuser.experiment import ExperimentConfig, SourceConfig, load_source


def test_mpt_checkpoint_loads_with_the_native_class_without_remote_code(tmp_path):
    tok = train_tiny_tokenizer(["add 1 2 = 3"] * 4, vocab_size=270)
    model = MptForCausalLM(MptConfig(d_model=32, n_heads=2, n_layers=1, vocab_size=len(tok), max_seq_len=64))
    folder = tmp_path / "mpt-7b-8k-chat"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {  # as on the hub: MosaicML's own modelling files, absent here
        "AutoConfig": "configuration_mpt.MPTConfig",
        "AutoModelForCausalLM": "modeling_mpt.MPTForCausalLM",
    }
    (folder / "config.json").write_text(json.dumps(config))
    cfg = from_config(ExperimentConfig, compose("profuser", ["experiment=paper"]))
    side = load_source(cfg, SourceConfig(name="mpt", model=str(folder), chat=True), None, tmp_path)
    assert type(side.model).__name__ == "MptForCausalLM" and not side.model.training
    assert side.tokenizer.chat_template  # ChatML where the tokenizer has none
