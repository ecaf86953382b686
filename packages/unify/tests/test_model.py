import pytest
import torch


def test_lexicon_vectors_nonnegative_vocab_sized_and_specials_zero(make_model, tokenizer, splits):
    model = make_model()
    frames, captions, _ = splits[1].batch(torch.arange(4))
    lat_v, lex_v = model.encode_video(frames)
    lat_t, lex_t = model.encode_text(*tokenizer.encode(captions))
    for lex in (lex_v, lex_t):
        assert lex.shape == (4, tokenizer.vocab_size)
        assert (lex >= 0).all()
        assert (lex[:, tokenizer.special_ids] == 0).all()
    for lat in (lat_v, lat_t):
        assert torch.allclose(lat.norm(dim=-1), torch.ones(4), atol=1e-5)


def test_padding_never_changes_text_vectors(make_model, tokenizer):
    model = make_model().eval()
    ids, lengths = tokenizer.encode(["red circle moving left"])
    noisy = ids.clone()
    noisy[0, lengths[0] :] = torch.randint(5, tokenizer.vocab_size, (ids.shape[1] - int(lengths[0]),))
    with torch.no_grad():
        a = model.encode_text(ids, lengths)
        b = model.encode_text(noisy, lengths)
    assert torch.allclose(a[0], b[0], atol=1e-6) and torch.allclose(a[1], b[1], atol=1e-6)


def test_structure_sharing_stem_shared_tops_distinct(make_model):
    model = make_model(layers=3, shared_layers=2)
    assert len(model.v_stem) == 2 and len(model.v_latent_top) == 1 and len(model.v_lexicon_top) == 1
    assert model.v_latent_top[0] is not model.v_lexicon_top[0]
    top_lat = dict(model.v_latent_top.named_parameters())
    top_lex = dict(model.v_lexicon_top.named_parameters())
    assert all(torch.equal(top_lat[k], top_lex[k]) and top_lat[k] is not top_lex[k] for k in top_lat)
    ids = {id(p) for p in model.parameters()}
    assert all(id(p) in ids for p in model.shared_parameters())
    # the stem is one set of tensors: parameters() counts each once, and both branches read the same blocks
    assert len(list(model.parameters())) == len({id(p) for p in model.parameters()})


def test_bad_input_errors(make_model, tokenizer):
    model = make_model()
    with pytest.raises(ValueError, match="zero frames"):
        model.encode_video(torch.zeros(2, 0, 3, 32, 32))
    with pytest.raises(ValueError, match="does not match the model's 32x32"):
        model.encode_video(torch.zeros(2, 4, 3, 64, 64))
    with pytest.raises(ValueError, match="caption 1 is empty"):
        tokenizer.encode(["red circle", "  "])
    with pytest.raises(ValueError, match="shared_layers"):
        make_model(layers=3, shared_layers=3)


def test_clip_vocabulary_offline():
    from unify.text import CaptionTokenizer

    tok = CaptionTokenizer("clip", context_length=32)
    ids, lengths = tok.encode(["a dog runs in the park"])
    assert tok.vocab_size == 49408
    assert ids[0, 0] == tok.start_id and ids[0, lengths[0] - 1] == tok.end_id
    assert tok.words(tok.word_ids(["dog", "park"])) == ["dog", "park"]
