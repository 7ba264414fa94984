"""Position tables: timm-exact resampling, cache behaviour, sin-cos."""
import pytest
import torch

import vitkit
from vitkit.layers import resample_pos_embed, sincos_2d_pos_embed

import timm.layers.pos_embed as timm_pos


@pytest.mark.parametrize("new", [(7, 7), (20, 10), (3, 5)])
@pytest.mark.parametrize("prefix", [0, 1, 2])
def test_resample_matches_timm(new, prefix):
    table = torch.randn(1, prefix + 14 * 14, 32)
    ours = resample_pos_embed(table, new, (14, 14), prefix)
    ref = timm_pos.resample_abs_pos_embed(table, new_size=list(new), old_size=(14, 14), num_prefix_tokens=prefix)
    assert torch.equal(ours, ref)
    assert torch.equal(ours[:, :prefix], table[:, :prefix])  # [class] / dist entries kept as is


def test_runtime_resampling_is_cached_and_invalidated_by_updates():
    model = vitkit.create_model("vit_tiny_patch4_32").eval()
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        a = model(x)
        assert len(model._pos_cache) == 1
        b = model(x)
        assert torch.equal(a, b) and len(model._pos_cache) == 1
        model.pos_embed.add_(0.5)  # an optimizer step bumps the version: the cache must not be stale
        c = model(x)
    assert not torch.equal(a, c)
    table = resample_pos_embed(model.pos_embed, (12, 16), (8, 8), 1)
    assert torch.equal(model.pos_table((12, 16)), table)


def test_training_resamples_with_gradient():
    model = vitkit.create_model("vit_tiny_patch4_32", depth=1).train()
    model(torch.randn(1, 3, 48, 48)).sum().backward()
    assert model.pos_embed.grad is not None and model.pos_embed.grad.abs().sum() > 0
    assert not model._pos_cache


def test_sincos_is_fixed_and_any_grid():
    t = sincos_2d_pos_embed((4, 6), 32, num_prefix_tokens=1)
    assert t.shape == (1, 25, 32) and torch.equal(t[0, 0], torch.zeros(32))
    # entry for (row 2, col 3): sin(2ω₀)=sin(2) in the row-sin block, sin(3) in the col-sin block
    e = t[0, 1 + 2 * 6 + 3]
    assert e[0].item() == pytest.approx(torch.sin(torch.tensor(2.0)).item(), abs=1e-6)
    assert e[16].item() == pytest.approx(torch.sin(torch.tensor(3.0)).item(), abs=1e-6)
    model = vitkit.create_model("vit_tiny_patch4_32", pos_embed="sincos")
    assert "pos_embed" not in model.state_dict() and "pos_embed" not in dict(model.named_parameters())
    assert model(torch.randn(1, 3, 32, 48)).shape == (1, 1000)
