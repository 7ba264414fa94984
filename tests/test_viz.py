"""Figures: PNGs of the expected size that are not blank; the analysis maths against hand values."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import vitkit
from vitkit.viz import analysis


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, cifar_small):
    from vitkit.training.config import load_train_config
    from vitkit.training.loop import train

    run = tmp_path_factory.mktemp("viz") / "run"
    train(load_train_config(None, ["model.name=deit_tiny_distilled_patch4_32", "model.overrides={depth: 2}",
                                   f"data.path={cifar_small}", f"run.out={run}", "optim.epochs=1",
                                   "optim.batch_size=50", "data.workers=0", "run.progress=false"]))
    return run


def _png_ok(path, size):
    img = Image.open(path)
    assert img.size == size, img.size
    a = np.asarray(img.convert("L"), dtype=float)
    assert a.std() > 5, "blank image"


@pytest.mark.parametrize("fig,extra,size", [
    ("attention", ["IMG"], (1200, 280)), ("rollout", ["IMG"], (480, 280)), ("posemb", [], (400, 400)),
    ("filters", [], (840, 520)), ("distance", ["--data", "DATA", "--max-images", "40"], (500, 400)),
    ("confusion", ["--data", "DATA"], (700, 650)),
])
def test_each_command_writes_a_png(trained_run, cifar_small, tmp_path, fig, extra, size):
    img = cifar_small / "test" / "cat" / "0000.jpg"
    args = [str(img) if a == "IMG" else str(cifar_small) if a == "DATA" else a for a in extra]
    out = tmp_path / f"{fig}.png"
    r = subprocess.run([sys.executable, "-m", "vitkit", "viz", fig, str(trained_run), *args, "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out)
    _png_ok(out, size)


def test_curves_overlays_runs(trained_run, tmp_path):
    out = tmp_path / "c.png"
    r = subprocess.run([sys.executable, "-m", "vitkit", "viz", "curves", str(trained_run), str(trained_run),
                        "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    _png_ok(out, (1300, 360))


def test_bad_inputs(trained_run, tmp_path):
    (tmp_path / "bad.jpg").write_text("not an image")
    (tmp_path / "empty_run").mkdir()
    for args in (["attention", str(trained_run), str(tmp_path / "bad.jpg")],
                 ["rollout", str(trained_run), str(tmp_path / "missing.jpg")],
                 ["curves", str(tmp_path / "empty_run")]):
        r = subprocess.run([sys.executable, "-m", "vitkit", "viz", *args, "--out", str(tmp_path / "x.png")],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "x.png").exists()


def identity_maps(blocks, tokens, heads=2):
    return [torch.eye(tokens).expand(1, heads, tokens, tokens).clone() for _ in range(blocks)]


def test_rollout_of_identity_attention_is_uniform():
    r = analysis.attention_rollout(identity_maps(4, 1 + 9), 1, (3, 3))
    assert r.shape == (1, 3, 3) and torch.all(r == r.flatten()[0])


def test_attention_rows_sum_to_one(trained_run):
    model = vitkit.load_model(trained_run)
    for m in model.get_attention_maps(torch.randn(2, 3, 32, 32)):
        assert torch.allclose(m.sum(-1), torch.ones(m.shape[:-1]), atol=1e-5)


def test_attention_distance_identity_is_zero_and_hand_value():
    assert torch.all(analysis.mean_attention_distance(identity_maps(2, 1 + 4), 1, (2, 2), 16) == 0)
    # 1×2 grid, patch 10: query 0 puts 3/4 on itself and 1/4 on the other patch (10 px away);
    # query 1 puts 1/2 on each. Mean distance = (0.25·10 + 0.5·10) / 2 = 3.75 px.
    a = torch.tensor([[0.75, 0.25], [0.5, 0.5]])[None, None]
    assert analysis.mean_attention_distance([a], 0, (1, 2), 10).item() == pytest.approx(3.75)


def test_posemb_similarity_diagonal_is_one():
    sim = analysis.pos_embed_similarity(torch.randn(1, 1 + 12, 16), 1, (3, 4))
    assert sim.shape == (3, 4, 3, 4)
    assert torch.allclose(torch.stack([sim[r, c, r, c] for r in range(3) for c in range(4)]), torch.ones(12))
