"""The fused SDPA path against the explicit softmax(QKᵀ/√d)V reference, and attention maps."""
import pytest
import torch

import vitkit


def naive_attention(attn_module, x):
    """Independent reference written from the definition, using the module's weights."""
    B, N, D = x.shape
    h = attn_module.num_heads
    q, k, v = attn_module.qkv(x).split(D, dim=-1)
    q, k, v = (t.reshape(B, N, h, D // h).transpose(1, 2) for t in (q, k, v))
    p = torch.softmax(q @ k.transpose(-1, -2) / (D // h) ** 0.5, dim=-1)
    return attn_module.proj((p @ v).transpose(1, 2).reshape(B, N, D)), p


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "vit_small_patch4_32", "deit_tiny_distilled_patch4_32"])
def test_sdpa_equals_explicit_softmax_path(name):
    model = vitkit.create_model(name).eval()
    attn = model.blocks[0].attn
    x = torch.randn(2, 17, model.cfg.embed_dim)
    grid = (4, 4)
    attn.rel_pos = None
    fused, _ = attn(x, grid)
    attn.fused = False
    explicit, probs = attn(x, grid, return_attention=True)
    ref, ref_probs = naive_attention(attn, x)
    assert torch.allclose(fused, ref, atol=1e-5)
    assert torch.allclose(explicit, ref, atol=1e-5)
    assert torch.allclose(probs, ref_probs, atol=1e-6)


def test_whole_model_fused_equals_explicit():
    model = vitkit.create_model("vit_small_patch4_32", num_classes=10).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        a = model(x)
        model.set_attention_impl(fused=False)
        b = model(x)
    assert (a - b).abs().max() < 1e-5


def test_attention_maps_rows_sum_to_one_and_shapes():
    model = vitkit.create_model("deit_tiny_distilled_patch4_32").eval()
    maps = model.get_attention_maps(torch.randn(2, 3, 32, 32))
    assert len(maps) == 12
    assert maps[0].shape == (2, 3, 66, 66)  # 2 prefix tokens + 8×8 patches
    for m in maps:
        assert torch.allclose(m.sum(-1), torch.ones_like(m.sum(-1)), atol=1e-5)
    assert torch.equal(model.get_last_selfattention(torch.zeros(1, 3, 32, 32)),
                       model.get_attention_maps(torch.zeros(1, 3, 32, 32))[-1])


def test_grad_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    a = vitkit.create_model("vit_tiny_patch4_32", num_classes=10).train()
    b = vitkit.create_model("vit_tiny_patch4_32", num_classes=10).train()
    b.load_state_dict(a.state_dict())
    b.set_grad_checkpointing(True)
    x = torch.randn(2, 3, 32, 32)
    a(x).sum().backward()
    b(x).sum().backward()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-6), n


def test_compiles_without_graph_breaks():
    torch._dynamo.reset()
    model = vitkit.create_model("vit_tiny_patch4_32", num_classes=10, depth=2).eval()
    x = torch.randn(2, 3, 32, 32)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
