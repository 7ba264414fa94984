"""`vitkit viz attention | rollout | posemb | filters | distance | curves | confusion`.

    vitkit viz attention runs/cifar cat.jpg --layer -1 --out attn.png
    vitkit viz rollout runs/cifar cat.jpg
    vitkit viz posemb runs/cifar
    vitkit viz curves runs/a runs/b
Each writes one PNG and prints its path.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UsageError


def register(sub) -> None:
    viz = sub.add_parser("viz", help="figures: attention, rollout, posemb, filters, distance, curves, confusion")
    vs = viz.add_subparsers(dest="viz_command", metavar="FIGURE", parser_class=type(viz))
    specs = {
        "attention": ("[class] attention per head and averaged, over the image", True, True, False),
        "rollout": ("attention rollout through all blocks, over the image", True, True, False),
        "posemb": ("cosine similarity of position embeddings", True, False, False),
        "filters": ("principal components of patch-embedding filters", True, False, False),
        "distance": ("mean attention distance per head against depth", True, False, True),
        "confusion": ("confusion matrix on a data folder", True, False, True),
    }
    for name, (helptext, ckpt, image, data) in specs.items():
        p = vs.add_parser(name, help=helptext)
        p.add_argument("checkpoint", help="run directory or any checkpoint load_model reads")
        if image:
            p.add_argument("image")
        if data:
            p.add_argument("--data", required=True, help="ImageFolder root (or one with val/ or test/)")
            p.add_argument("--max-images", type=int, default=256 if name == "distance" else None)
        if name == "attention":
            p.add_argument("--layer", type=int, default=-1, help="block index (negative counts from the end)")
        p.add_argument("--out", help=f"PNG path (default vitkit_{name}.png)")
        p.set_defaults(func=run, viz=name)
    p = vs.add_parser("curves", help="loss, accuracy and lr from metrics.jsonl (several runs overlay)")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--x", choices=["epoch", "minutes"], default="epoch",
                   help="accuracy against epochs or against wall-clock minutes since the run started")
    p.add_argument("--out", help="PNG path (default vitkit_curves.png)")
    p.set_defaults(func=run, viz="curves")
    viz.set_defaults(func=lambda args: (viz.print_help(), 2)[1])


def _display_image(model, path: str):
    """The crop the model sees, unnormalised, as an (H, W, 3) array in [0, 1]; and its tensor."""
    from ..data.images import UNREADABLE, open_rgb
    from ..data.transforms import preprocess_of, transform_for
    from ..viz.overlays import as_display

    if not Path(path).is_file():
        raise UsageError(f"{path}: no such image file")
    try:
        img = open_rgb(path)
    except UNREADABLE as e:
        raise UsageError(f"{path}: cannot read image ({type(e).__name__})") from None
    x = transform_for(model)(img)
    pre = preprocess_of(model)
    return as_display(x, pre["mean"], pre["std"], enlarge_below=128), x[None]  # 32-px images enlarged


def _data_loader(model, root: str, max_images: int | None):
    import torch

    from ..data.folders import ImageFolderSafe, collate_skip_bad, eval_folder
    from ..data.transforms import transform_for

    folder = eval_folder(root)
    ds = ImageFolderSafe(folder, transform_for(model), classes=getattr(model, "class_names", None))
    if max_images:
        g = torch.Generator().manual_seed(0)
        ds = torch.utils.data.Subset(ds, torch.randperm(len(ds), generator=g)[:max_images].tolist())
    return ds, torch.utils.data.DataLoader(ds, batch_size=64, collate_fn=collate_skip_bad)


def run(args) -> int:
    import torch

    from ..checkpoint import load_model
    from ..checkpoint.io import check_out_file
    from ..viz import analysis as va
    from ..viz import figures as vf

    out = Path(args.out or f"vitkit_{args.viz}.png")
    check_out_file(out, "--out")
    if args.viz == "curves":
        print(vf.curves_figure([Path(r) for r in args.runs], out, x=args.x))
        return 0
    model = load_model(args.checkpoint)
    if not hasattr(model, "get_attention_maps"):
        raise UsageError(f"{args.checkpoint}: not a ViT; viz needs a vision transformer")
    cfg, P = model.cfg, model.num_prefix_tokens
    if args.viz in ("attention", "rollout"):
        image, x = _display_image(model, args.image)
        grid = (x.shape[-2] // cfg.patch_size, x.shape[-1] // cfg.patch_size)
        maps = model.get_attention_maps(x)
        if args.viz == "attention":
            if not -len(maps) <= args.layer < len(maps):
                raise UsageError(f"--layer {args.layer}: the model has {len(maps)} blocks")
            att = va.cls_attention(maps[args.layer], P, grid)[0]  # (heads, H, W)
            layer = args.layer % len(maps)
            path = vf.overlay_grid(image, [att.mean(0)] + list(att), ["mean of heads"] + [f"head {h}" for h in range(len(att))],
                                   out, f"[class] attention, block {layer}")
        else:
            path = vf.overlay_grid(image, [va.attention_rollout(maps, P, grid)[0]], ["rollout"], out,
                                   "attention rollout (Abnar & Zuidema 2020)")
    elif args.viz == "posemb":
        if not isinstance(model.pos_embed, torch.nn.Parameter):
            raise UsageError(f"{args.checkpoint}: the model has no learned position embeddings (pos_embed={cfg.pos_embed})")
        path = vf.posemb_figure(va.pos_embed_similarity(model.pos_embed.detach(), P, cfg.grid_size), out)
    elif args.viz == "filters":
        path = vf.filters_figure(va.filter_components(model.patch_embed.first_conv().weight), out)
    elif args.viz == "distance":
        ds, loader = _data_loader(model, args.data, args.max_images)
        sums, n = None, 0
        for xb, _, _ in loader:
            if xb is None:
                continue
            grid = (xb.shape[-2] // cfg.patch_size, xb.shape[-1] // cfg.patch_size)
            d = va.mean_attention_distance(model.get_attention_maps(xb), P, grid, cfg.patch_size) * xb.shape[0]
            sums, n = (d if sums is None else sums + d), n + xb.shape[0]
        if not n:
            raise UsageError(f"{args.data}: no readable images")
        path = vf.distance_figure(sums / n, out, cfg.patch_size)
    else:  # confusion
        from ..parallel import distributed as dist_utils
        from ..inference.evaluate import evaluate

        ds, loader = _data_loader(model, args.data, args.max_images)
        base = ds.dataset if hasattr(ds, "dataset") else ds
        m = evaluate(model, loader, dist_utils.Dist(), len(base.classes))
        path = vf.confusion_figure(m["confusion"], base.classes, out)
    print(path)
    return 0
