"""`vitkit models [PATTERN]`: the registry as a table."""
from __future__ import annotations

import json

from ..checkpoint.hub import DEFAULT_TAGS
from ..pretrained import list_bundled
from ..registry import list_models, model_config


def register(sub) -> None:
    p = sub.add_parser("models", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'vit_small*'")
    p.add_argument("--json", action="store_true", help="one JSON list of objects")
    p.set_defaults(func=run)


def _params(cfg) -> int:
    """Parameter count without allocating weights (meta device)."""
    import torch

    from ..models import build_model

    with torch.device("meta"):
        return sum(p.numel() for p in build_model(cfg).parameters())


def run(args) -> int:
    rows = []
    for name in list_models(args.pattern):
        cfg = model_config(name)
        rows.append({"name": name, "img_size": cfg.img_size[0], "patch": cfg.patch_size, "width": cfg.embed_dim,
                     "depth": cfg.depth, "heads": cfg.num_heads, "params_m": round(_params(cfg) / 1e6, 2),
                     "extras": ",".join(x for x in ("distilled" if cfg.distilled else "",
                                                    f"rel_pos={cfg.rel_pos}" if cfg.rel_pos != "none" else "",
                                                    "pretrained" if name in DEFAULT_TAGS else "") if x),
                     "pretrained": f"hf-hub:timm/{name}.{DEFAULT_TAGS[name]}" if name in DEFAULT_TAGS else None})
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print(f"no model matches {args.pattern!r}")
        return 1
    print(f"{'model':<40}{'img':>5}{'patch':>6}{'width':>6}{'depth':>6}{'heads':>6}{'params(M)':>11}  extras")
    for r in rows:
        print(f"{r['name']:<40}{r['img_size']:>5}{r['patch']:>6}{r['width']:>6}{r['depth']:>6}{r['heads']:>6}"
              f"{r['params_m']:>11.2f}  {r['extras']}")
    print("\npretrained: create_model(name, pretrained=True) or --init hf-hub:timm/NAME.TAG (Hugging Face cache); "
          f"bundled, by name anywhere a checkpoint is taken: {', '.join(list_bundled()) or 'none'}")
    return 0
