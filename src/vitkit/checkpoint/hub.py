"""Weights by name from the Hugging Face Hub, through huggingface_hub's own cache.

    vitkit.load_model("hf-hub:timm/vit_base_patch16_224.augreg2_in21k_ft_in1k")   # timm layout
    vitkit.load_model("hf-hub:google/vit-base-patch16-224")                       # transformers layout
    vitkit.load_model("hf-hub:facebook/deit-tiny-patch16-224@main")               # @ a revision
    vitkit.create_model("vit_small_patch16_224", pretrained=True)                 # timm's default tag

The cache, `HF_HOME`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE` and tokens are huggingface_hub's: a file
fetched once is read from the cache afterwards, also offline. Offline and not cached is a
one-line CheckpointError (exit 2 from the CLI). Only config.json, the weights (safetensors first,
else pytorch_model.bin, read with weights_only) and, for transformers repos,
preprocessor_config.json are fetched.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from .io import WEIGHT_FILES

PREFIX = "hf-hub:"

# Registry name → the tag timm 1.0 publishes first for it (its `pretrained=True` default).
DEFAULT_TAGS: dict[str, str] = {
    "vit_tiny_patch16_224": "augreg_in21k_ft_in1k", "vit_tiny_patch16_384": "augreg_in21k_ft_in1k",
    "vit_small_patch16_224": "augreg_in21k_ft_in1k", "vit_small_patch16_384": "augreg_in21k_ft_in1k",
    "vit_small_patch32_224": "augreg_in21k_ft_in1k", "vit_small_patch32_384": "augreg_in21k_ft_in1k",
    "vit_base_patch16_224": "augreg2_in21k_ft_in1k", "vit_base_patch16_384": "augreg_in21k_ft_in1k",
    "vit_base_patch32_224": "augreg_in21k_ft_in1k", "vit_base_patch32_384": "augreg_in21k_ft_in1k",
    "vit_large_patch16_224": "augreg_in21k_ft_in1k", "vit_large_patch16_384": "augreg_in21k_ft_in1k",
    "vit_large_patch32_384": "orig_in21k_ft_in1k",
    "deit_tiny_patch16_224": "fb_in1k", "deit_small_patch16_224": "fb_in1k", "deit_base_patch16_224": "fb_in1k",
    "deit_tiny_distilled_patch16_224": "fb_in1k", "deit_small_distilled_patch16_224": "fb_in1k",
    "deit_base_distilled_patch16_224": "fb_in1k",
}  # timm's vit_relpos_* weights use a log-coordinate MLP vitkit does not implement: not listed


def is_hub(spec) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def pretrained_spec(name: str) -> str:
    """`hf-hub:timm/<name>.<default tag>` for a registered name; a one-line error otherwise."""
    if name not in DEFAULT_TAGS:
        raise CheckpointError(f"no published weights are known for {name!r}; pass a checkpoint or an "
                              f"hf-hub:ORG/REPO name to load_model instead")
    return f"{PREFIX}timm/{name}.{DEFAULT_TAGS[name]}"


def _parse(spec: str) -> tuple[str, str | None]:
    repo = spec[len(PREFIX):]
    repo, _, revision = repo.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise CheckpointError(f"{spec}: expected hf-hub:ORG/REPO[@REVISION]")
    return repo, revision or None


def _offline_line(spec: str) -> str:
    from huggingface_hub import constants

    return (f"{spec}: not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the Hub cannot be reached"
            + (" (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else "")
            + "; download it once online or point HF_HOME at a cache that holds it")


def download(spec: str) -> Path:
    """The local snapshot folder holding config.json and the weights of `spec`."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError,
                                            RepositoryNotFoundError, RevisionNotFoundError)
    except ImportError:
        raise CheckpointError(f"{spec}: loading from the Hub needs huggingface_hub (pip install huggingface_hub)") from None
    repo, revision = _parse(spec)

    def get(filename: str) -> Path:
        return Path(hf_hub_download(repo, filename, revision=revision))

    try:
        config = get("config.json")
        for weights in WEIGHT_FILES:
            try:
                get(weights)
                break
            except EntryNotFoundError:  # local or remote: try the other format
                continue
        else:
            raise CheckpointError(f"{spec}: the repo (or the cache) holds no model.safetensors or pytorch_model.bin")
        try:
            get("preprocessor_config.json")  # transformers repos: mean, std, size
        except (EntryNotFoundError, OSError):
            pass
    except GatedRepoError:
        raise CheckpointError(f"{spec}: a gated repo; accept its terms on huggingface.co and log in "
                              f"(huggingface-cli login or HF_TOKEN)") from None
    except RepositoryNotFoundError:
        raise CheckpointError(f"{spec}: no such repo on the Hub (or it is private)") from None
    except RevisionNotFoundError:
        raise CheckpointError(f"{spec}: no such revision") from None
    except LocalEntryNotFoundError:
        raise CheckpointError(_offline_line(spec)) from None
    except OSError as e:  # network errors without a cached copy
        raise CheckpointError(f"{spec}: {str(e).splitlines()[0][:200]}") from None
    return config.parent


def timm_hub_extras(header: dict) -> tuple[dict, list[str] | None, str | None]:
    """(preprocess, class names, architecture) from a timm hub config.json and its pretrained_cfg."""
    pc = header.get("pretrained_cfg") or {}
    size = pc.get("test_input_size") or pc.get("input_size") or [3, 224, 224]
    pre = {"img_size": int(size[-1]), "mean": list(pc.get("mean", (0.485, 0.456, 0.406))),
           "std": list(pc.get("std", (0.229, 0.224, 0.225))),
           "crop_pct": float(pc.get("test_crop_pct") or pc.get("crop_pct") or 0.875),
           "interpolation": pc.get("interpolation", "bicubic")}
    names = header.get("label_names") or pc.get("label_names")
    return pre, (list(names) if names else None), header.get("architecture")


def hf_preprocess(path: Path) -> dict | None:
    """Eval preprocessing from a transformers repo's preprocessor_config.json, if present."""
    import json

    f = path / "preprocessor_config.json"
    if not f.exists():
        return None
    pc = json.loads(f.read_text())
    size = pc.get("size", 224)
    side = size if isinstance(size, int) else size.get("height") or size.get("shortest_edge") or 224
    # PIL resample codes: 2 bilinear, 3 bicubic. HF resizes straight to the size: no crop.
    return {"img_size": int(side), "mean": list(pc.get("image_mean", (0.5, 0.5, 0.5))),
            "std": list(pc.get("image_std", (0.5, 0.5, 0.5))), "crop_pct": 1.0,
            "interpolation": {2: "bilinear", 3: "bicubic"}.get(pc.get("resample", 2), "bilinear")}


