"""`vitkit demo MODEL`: a Gradio page to try a model in the browser and see what it attends to.

    vitkit demo cifar10_vit_tiny --port 7860          # open http://127.0.0.1:7860
    python -c "from gradio_client import Client, handle_file as f; \\
               print(Client('http://127.0.0.1:7860/').predict(f('cat.jpg'), api_name='/predict'))"

Upload, paste (clipboard) or pick a bundled CIFAR-10 sample → the top-5 classes as bars, the
attention rollout over the image, the [class] token's attention of any block and head (selectors),
and the cosine similarity of the learned position embeddings. An `.onnx` model has no attention
maps to read: the page shows predictions only and says so. The API endpoint `/predict` takes the
image alone and returns the top-k labels (gr.Label: {"label", "confidences": [{"label", "confidence"}]}).

Needs the `demo` extra: pip install 'vitkit[demo]' (gradio). The page loads no web fonts and sends
no analytics, so it works on a machine without internet.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_model
from ..data.folders import SAMPLE_DIR
from ..data.images import images_under, to_rgb
from ..data.transforms import preprocess_of, transform_for
from ..errors import UsageError
from ..inference.predict import class_label
from ..viz import analysis as va
from ..viz.figures import posemb_figure
from ..viz.overlays import as_display, blend
from .onnx_runtime import OnnxClassifier, is_onnx_file

MEAN_OF_HEADS = "mean of heads"
ONNX_NOTE = "This is an ONNX model: the page shows predictions only (attention maps need a PyTorch checkpoint)."
DISPLAY_SIDE = 224  # small inputs (32-px CIFAR) are enlarged, nearest-neighbour, so maps are visible


class DemoModel:
    """What the page shows, as plain functions of a PIL image (the Gradio callbacks wrap these)."""

    def __init__(self, ref: str):
        self.ref = ref
        if is_onnx_file(ref):
            self.model = OnnxClassifier(ref)
        else:
            self.model = load_model(ref).float().eval()
        self.transform = transform_for(self.model)
        self.explainable = hasattr(self.model, "get_attention_maps")
        self.blocks = len(self.model.blocks) if self.explainable else 0
        self.heads = self.model.cfg.num_heads if self.explainable else 0

    def _input(self, image) -> torch.Tensor:
        return self.transform(to_rgb(image))[None]  # (1, C, H, W), normalised

    @torch.no_grad()
    def topk(self, image, k: int = 5) -> dict[str, float]:
        """{label: probability} of the k most probable classes."""
        probs = self.model(self._input(image)).float().softmax(dim=-1)[0]
        top = probs.topk(min(k, probs.numel()))
        return {class_label(self.model, int(i)): float(v) for v, i in zip(top.values, top.indices)}

    @torch.no_grad()
    def attention(self, image, block: int, head: str | int) -> tuple[np.ndarray, np.ndarray]:
        """(rollout overlay, [class] attention overlay of `block` for `head` or the mean of heads),
        each (H, W, 3) uint8."""
        if not self.explainable:
            raise UsageError(f"{self.ref}: an ONNX model has no attention maps")
        if not 0 <= block < self.blocks:
            raise UsageError(f"block {block}: the model has blocks 0 to {self.blocks - 1}")
        x = self._input(image)
        p = self.model.cfg.patch_size
        grid = (x.shape[-2] // p, x.shape[-1] // p)
        maps = self.model.get_attention_maps(x)  # per block (1, heads, T, T)
        prefix = self.model.num_prefix_tokens
        cls = va.cls_attention(maps[block], prefix, grid)[0]  # (heads, H/p, W/p)
        if head == MEAN_OF_HEADS:
            chosen = cls.mean(0)
        elif 0 <= int(head) < self.heads:
            chosen = cls[int(head)]
        else:
            raise UsageError(f"head {head}: the model has heads 0 to {self.heads - 1}")
        pre = preprocess_of(self.model)
        shown = as_display(x[0], pre["mean"], pre["std"], enlarge_below=DISPLAY_SIDE)  # (H, W, 3) in [0, 1]
        return blend(shown, va.attention_rollout(maps, prefix, grid)[0]), blend(shown, chosen)

    def posemb_picture(self, folder: Path) -> tuple[Path, str] | None:
        """The position-embedding similarity figure as a PNG in `folder` and its caption, or None
        when the model adds no absolute table (pos_embed "none", relative positions only)."""
        pos = getattr(self.model, "pos_embed", None)
        if not isinstance(pos, torch.Tensor):
            return None
        kind = "learned" if isinstance(pos, torch.nn.Parameter) else f"fixed {self.model.cfg.pos_embed} table"
        sim = va.pos_embed_similarity(pos.detach(), self.model.num_prefix_tokens, self.model.cfg.grid_size)
        return posemb_figure(sim, folder / "posemb.png"), f"position-embedding similarity (cosine; {kind})"


def sample_images(per_class: int = 1) -> list[str]:
    """One bundled CIFAR-10 test image per class, for the page's examples."""
    seen: dict[str, int] = {}
    out = []
    for path in images_under(SAMPLE_DIR / "test"):
        if seen.get(path.parent.name, 0) < per_class:
            seen[path.parent.name] = seen.get(path.parent.name, 0) + 1
            out.append(str(path))
    return out


def require_gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home (set before the import)
    try:
        import gradio
    except ImportError:
        raise UsageError("gradio is not installed: pip install 'vitkit[demo]'") from None
    return gradio


def build_demo(dm: DemoModel, topk: int = 5, workdir: Path | None = None):
    """The gr.Blocks page for one model."""
    gr = require_gradio()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="vitkit-demo-"))
    with gr.Blocks(title=f"vitkit demo: {dm.ref}") as page:
        gr.Markdown(f"## vitkit demo: `{dm.ref}`\nUpload or paste an image, or pick a sample below.")
        if not dm.explainable:
            gr.Markdown(ONNX_NOTE, elem_id="onnx-note")
        with gr.Row():
            with gr.Column():
                image = gr.Image(type="pil", sources=["upload", "clipboard"], label="image", elem_id="input-image",
                                 height=240)
                gr.Examples(sample_images(), inputs=image, label="bundled CIFAR-10 samples")
            label = gr.Label(num_top_classes=topk, label=f"top-{topk}", elem_id="topk")
        image.change(lambda img: None if img is None else dm.topk(img, topk), image, label, api_name="predict")
        if dm.explainable:
            _attention_row(gr, dm, image)
            picture = dm.posemb_picture(workdir)
            if picture is not None:
                gr.Image(str(picture[0]), label=picture[1], interactive=False, elem_id="posemb")
            else:
                gr.Markdown("No absolute position table in this model (relative positions only or none).",
                            elem_id="posemb")
    return page


def _attention_row(gr, dm: DemoModel, image) -> None:
    with gr.Row():
        rollout = gr.Image(label="attention rollout (all blocks)", interactive=False, elem_id="rollout")
        with gr.Column():
            with gr.Row():
                block = gr.Dropdown(list(range(dm.blocks)), value=dm.blocks - 1, label="block", elem_id="block")
                head = gr.Dropdown([MEAN_OF_HEADS] + list(range(dm.heads)), value=MEAN_OF_HEADS, label="head",
                                   elem_id="head")
            attn = gr.Image(label="[class] attention of the block", interactive=False, elem_id="attention")

    def show(img, b, h):
        return (None, None) if img is None else dm.attention(img, int(b), h)

    for trigger in (image.change, block.change, head.change):
        trigger(show, [image, block, head], [rollout, attn], api_visibility="private")


def launch(page, host: str, port: int, block: bool = True) -> str:
    """Serve the page (until interrupted when `block`, else in a thread; `page.close()` stops it);
    returns its URL. Local fonts only, no server-side rendering (no Node.js needed)."""
    gr = require_gradio()
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])
    _, url, _ = page.queue().launch(server_name=host, server_port=port, theme=theme, ssr_mode=False, share=False,
                                    footer_links=["api"], allowed_paths=[str(SAMPLE_DIR)], quiet=not block,
                                    prevent_thread_lock=not block)
    return url
