"""Relative position terms: offset-only dependence, fused == explicit, resizing, gradients, timm."""
import pytest
import torch

import vitkit
from vitkit.models import build_model

FORMS = ["shaw", "decomposed", "bias"]


def _model(form, **kw):
    kw = {"depth": 2, "num_classes": 10, "rel_pos": form, **kw}
    m = vitkit.create_model("vit_tiny_patch4_32", **kw)
    with torch.no_grad():  # non-trivial tables (init is small) so equalities are not vacuous
        for blk in m.blocks:
            for p in blk.attn.rel_pos.parameters():
                p.normal_(0, 1.0)
    return m.eval()


def first_layer_logits(model, x):
    """Pre-softmax logits of block 0, written out from the module's parts: (B, heads, N, N)."""
    tokens, grid = model.embed(x)
    attn = model.blocks[0].attn
    h = model.blocks[0].norm1(tokens)
    B, N, D = h.shape
    q, k, _ = attn.qkv(h).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    return (q * attn.scale) @ k.transpose(-2, -1) + attn.rel_pos(q, grid)


@pytest.mark.parametrize("form", FORMS)
def test_term_depends_only_on_offset(form):
    model = _model(form)
    rel = model.blocks[0].attn.rel_pos
    q = torch.randn(1, 3, 1, rel.head_dim).expand(1, 3, 1 + 64, rel.head_dim)  # the same query everywhere
    bias = rel(q, (8, 8))[0, :, 1:, 1:].reshape(3, 8, 8, 8, 8)  # (heads, r_q, c_q, r_k, c_k)
    assert torch.allclose(bias[:, 1, 2, 3, 5], bias[:, 4, 1, 6, 4])  # offset (-2, -3) twice
    assert torch.allclose(bias[:, 0, 0, 0, 0], bias[:, 7, 7, 7, 7])  # offset (0, 0)
    assert not torch.allclose(bias[:, 0, 0, 0, 1], bias[:, 0, 0, 1, 0])
    assert torch.equal(rel(q, (8, 8))[0, :, 0], torch.zeros(3, 65))  # [class] row: zero term


@pytest.mark.parametrize("form", FORMS)
def test_equal_contents_at_equal_offsets_get_equal_logits_without_absolute_positions(form):
    """The seed's property: with pos_embed='none', attention sees offsets, not places."""
    model = _model(form, pos_embed="none")
    x = torch.randn(1, 3, 32, 32)
    a, b = torch.randn(3, 4, 4), torch.randn(3, 4, 4)

    def put(r, c, patch):
        x[0, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4] = patch

    put(1, 1, a), put(2, 3, b)  # pair one: offset (+1, +2)
    put(5, 2, a), put(6, 4, b)  # pair two, elsewhere: same contents, same offset
    with torch.no_grad():
        logits = first_layer_logits(model, x)[0]
    i1, j1, i2, j2 = [1 + r * 8 + c for r, c in ((1, 1), (2, 3), (5, 2), (6, 4))]
    assert torch.allclose(logits[:, i1, j1], logits[:, i2, j2], atol=1e-5)
    assert not torch.allclose(logits[:, i1, j1], logits[:, i1, j2], atol=1e-3)


@pytest.mark.parametrize("form,values", [("shaw", False), ("shaw", True), ("decomposed", False), ("bias", False)])
def test_fused_equals_explicit(form, values):
    model = _model(form, rel_pos_values=values)
    x = torch.randn(2, 3, 32, 48)  # non-square, off the training grid
    with torch.no_grad():
        a = model(x)
        model.set_attention_impl(fused=False)
        b = model(x)
    assert (a - b).abs().max() < 1e-5


@pytest.mark.parametrize("name", ["vit_tiny_patch4_32", "deit_tiny_distilled_patch4_32"])
def test_folded_term_equals_mask_in_outputs_and_gradients(name):
    """Decomposed/Shaw terms ride inside q·kᵀ (extra columns) instead of an (N, N) mask: same
    outputs and gradients, with 1 or 2 prefix tokens and the prefix-only last block."""
    torch.manual_seed(0)
    model = vitkit.create_model(name, num_classes=10, depth=2, rel_pos="decomposed").train()
    with torch.no_grad():
        for blk in model.blocks:
            for p in blk.attn.rel_pos.parameters():
                p.normal_(0, 1.0)
    x = torch.randn(2, 3, 32, 48)
    results = []
    for foldable in (True, False):
        for blk in model.blocks:
            blk.attn.rel_pos.foldable = foldable
        model.zero_grad()
        out = model(x)
        out = out[0] + out[1] if isinstance(out, tuple) else out
        out.square().sum().backward()
        results.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (a, ga), (b, gb) = results
    assert (a - b).abs().max() < 1e-4
    assert ga.keys() == gb.keys()
    for n in ga:
        assert torch.allclose(ga[n], gb[n], rtol=1e-3, atol=1e-4), n


@pytest.mark.parametrize("form", FORMS)
def test_resizing_keeps_trained_offsets_and_equals_runtime(form, tmp_path):
    model = _model(form)
    vitkit.save_model(model, tmp_path / "m")
    big = vitkit.load_model(tmp_path / "m", img_size=48)  # 8×8 → 12×12 grid, offsets ±7 → ±11
    for name, t in model.named_parameters():
        if ".rel_pos." not in name:
            continue
        t2 = dict(big.named_parameters())[name]
        if name.endswith("table"):
            old = t.reshape(15, 15, -1)
            assert torch.equal(t2.reshape(23, 23, -1)[4:19, 4:19], old)
        else:
            assert t2.shape[0] == 23 and torch.equal(t2[4:19], t)
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():  # load-time resize == run-time clamping; the learned pos table resamples the same way
        assert (big(x) - model(x)).abs().max() < 1e-5


@pytest.mark.parametrize("form", FORMS)
def test_gradients_reach_tables(form):
    model = _model(form, rel_pos_values=(form == "shaw")).train()
    # A loss on every token: with [class] pooling the last block's patch rows do not reach the head
    # (the [class] row has no relative term), so a head-only loss leaves those tables at zero grad.
    model.forward_features(torch.randn(2, 3, 32, 32)).square().sum().backward()
    for name, p in model.named_parameters():
        if ".rel_pos." in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("form", FORMS)
def test_compiles_without_graph_breaks(form):
    torch._dynamo.reset()
    model = _model(form)
    explanation = torch._dynamo.explain(model)(torch.randn(1, 3, 32, 32))
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_loads_timm_relpos_bias_checkpoint(tmp_path):
    import timm.models.vision_transformer_relpos as timm_relpos
    ref = timm_relpos.VisionTransformerRelPos(img_size=64, patch_size=16, embed_dim=96, depth=2, num_heads=3,
                                              num_classes=5, rel_pos_type="bias", class_token=False,
                                              global_pool="avg").eval()
    torch.save(ref.state_dict(), tmp_path / "relpos.pth")
    model = vitkit.load_model(tmp_path / "relpos.pth")
    assert model.cfg.rel_pos == "bias" and model.cfg.pos_embed == "none" and model.cfg.grid_size == (4, 4)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() < 1e-4


def test_timm_relpos_mlp_form_is_refused(tmp_path):
    import timm.models.vision_transformer_relpos as timm_relpos
    ref = timm_relpos.VisionTransformerRelPos(img_size=64, patch_size=16, embed_dim=96, depth=1, num_heads=3)
    torch.save(ref.state_dict(), tmp_path / "mlp.pth")
    with pytest.raises(vitkit.checkpoint.CheckpointError, match="MLP or shared form"):
        vitkit.load_model(tmp_path / "mlp.pth")
