"""`vitkit demo` as a user meets it: a real Gradio server, its API through gradio_client, and the
page in a real headless Chromium (Debian's package, driven by Playwright). The browser test keeps
a screenshot in $VITKIT_TEST_ARTIFACTS (default test-artifacts/)."""
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

import vitkit
from vitkit.deploy.demo import MEAN_OF_HEADS, ONNX_NOTE, DemoModel, build_demo, launch, sample_images
from vitkit.deploy.onnx_export import export_onnx
from vitkit.errors import UsageError
from vitkit.inference.predict import predict_files
from vitkit.viz import analysis as va

from test_train import ENV

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium package (scripts/install_browser.sh installs it); Playwright's download is not reachable
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # no calls to the closed network
ARTIFACTS = Path(os.environ.get("VITKIT_TEST_ARTIFACTS", "test-artifacts"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def demo_server(model: str):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vitkit", "demo", model, "--port", str(port)],
                            env={**ENV, "GRADIO_ANALYTICS_ENABLED": "False"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(1200):
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read())
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def live():
    with demo_server("cifar10_vit_tiny") as url:
        yield url


@pytest.fixture(scope="module")
def tiny():
    return DemoModel("cifar10_vit_tiny")


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    return export_onnx(vitkit.load_model("cifar10_vit_tiny"), tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def test_top5_equals_predict_files(tiny):
    paths = sample_images()
    assert len(paths) == 10 and len({Path(p).parent.name for p in paths}) == 10  # one per class
    ref = predict_files(vitkit.load_model("cifar10_vit_tiny"), paths, topk=5)
    for path, want in zip(paths, ref):
        got = tiny.topk(Image.open(path), 5)
        assert list(got) == [t["label"] for t in want["topk"]]
        np.testing.assert_allclose(list(got.values()), [t["prob"] for t in want["topk"]], atol=1e-5)


def test_attention_views_follow_the_selectors(tiny):
    img = Image.open(sample_images()[3])
    x = tiny._input(img)
    maps = tiny.model.get_attention_maps(x)
    cls = va.cls_attention(maps[1], tiny.model.num_prefix_tokens, (8, 8))[0]  # (heads, 8, 8)
    assert tiny.blocks == len(maps) and tiny.heads == cls.shape[0]
    rollout, mean_view = tiny.attention(img, 1, MEAN_OF_HEADS)
    assert rollout.shape == mean_view.shape == (224, 224, 3) and rollout.dtype == np.uint8
    views = [tiny.attention(img, 1, h)[1] for h in range(tiny.heads)]
    assert not np.array_equal(views[0], views[1])  # heads attend differently
    assert not np.array_equal(mean_view, tiny.attention(img, 0, MEAN_OF_HEADS)[1])  # and blocks do
    # the brightest pixel of head 0's view lies in the patch its map weights most
    hot = np.unravel_index(int(cls[0].argmax()), (8, 8))
    lum = views[0].astype(float).sum(-1)
    r, c = np.unravel_index(int(lum.argmax()), lum.shape)
    assert abs(r // 28 - hot[0]) <= 1 and abs(c // 28 - hot[1]) <= 1
    with pytest.raises(UsageError, match="blocks 0 to 5"):
        tiny.attention(img, 6, MEAN_OF_HEADS)
    with pytest.raises(UsageError, match="heads 0 to 2"):
        tiny.attention(img, 0, 3)


def test_posemb_picture_names_its_table(tiny, tmp_path):
    path, caption = tiny.posemb_picture(tmp_path)
    assert Image.open(path).size[0] >= 400 and "fixed sincos table" in caption
    learned = DemoModel.__new__(DemoModel)
    learned.model = vitkit.create_model("vit_tiny_patch4_32", pos_embed="learned", depth=1)
    assert "learned" in learned.posemb_picture(tmp_path)[1]
    learned.model = vitkit.create_model("vit_tiny_patch4_32", pos_embed="none", rel_pos="bias", depth=1)
    assert learned.posemb_picture(tmp_path) is None


def test_gradio_client_predict(live, tiny):
    from gradio_client import Client, handle_file

    client = Client(live, verbose=False)
    assert list(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == ["/predict"]
    path = sample_images()[3]
    out = client.predict(handle_file(path), api_name="/predict")
    want = tiny.topk(Image.open(path), 5)
    assert out["label"] == next(iter(want))
    assert [c["label"] for c in out["confidences"]] == list(want)
    np.testing.assert_allclose([c["confidence"] for c in out["confidences"]], list(want.values()), atol=1e-5)


def _chromium(playwright):
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install chromium (scripts/install_browser.sh does)"
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def test_page_in_chromium(live, tiny):
    from playwright.sync_api import expect, sync_playwright

    path = sample_images()[3]
    want = next(iter(tiny.topk(Image.open(path), 5)))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = _chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(live)
        page.locator("#input-image input[type=file]").set_input_files(path)
        expect(page.locator("#topk h2")).to_have_text(want, timeout=60_000)  # the top label, read off the page
        assert page.locator("#topk").inner_text().count("%") == 5  # five bars with percentages
        attention = page.locator("#attention img")
        expect(attention).to_be_visible(timeout=60_000)
        expect(page.locator("#rollout img")).to_be_visible()
        expect(page.locator("#posemb img")).to_be_visible()
        before = attention.get_attribute("src")
        page.locator("#head input").click()
        page.get_by_role("option", name="0", exact=True).click()  # the head selector redraws the map
        expect(attention).not_to_have_attribute("src", before, timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)
        browser.close()
    assert Image.open(ARTIFACTS / "demo.png").size[0] == 1280


def test_onnx_page_shows_predictions_only(onnx_file):
    from gradio_client import Client, handle_file
    from playwright.sync_api import expect, sync_playwright

    dm = DemoModel(str(onnx_file))
    assert not dm.explainable
    with pytest.raises(UsageError, match="no attention maps"):
        dm.attention(Image.open(sample_images()[0]), 0, MEAN_OF_HEADS)
    page_app = build_demo(dm)
    url = launch(page_app, "127.0.0.1", _free_port(), block=False)
    try:
        path = sample_images()[5]
        out = Client(url, verbose=False).predict(handle_file(path), api_name="/predict")
        assert out["label"] == next(iter(dm.topk(Image.open(path))))
        with sync_playwright() as p:
            browser = _chromium(p)
            page = browser.new_page()
            page.goto(url)
            expect(page.locator("#onnx-note")).to_have_text(ONNX_NOTE, timeout=60_000)
            assert page.locator("#rollout").count() == 0 and page.locator("#attention").count() == 0
            browser.close()
    finally:
        page_app.close()


def test_bad_model_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "vitkit", "demo", str(tmp_path / "nope.pt")], env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "nope.pt" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "vitkit", "demo", "cifar10_vit_tiny", "--port", "70000"], env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == "error: --port 70000: choose 0 to 65535"
