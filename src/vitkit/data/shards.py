"""WebDataset tar shards: writing them from an ImageFolder, and training from them.

    vitkit shards DIR --out SHARDS/ --shard-size 256MB       # SHARDS/train-000000.tar ..., val-..., dataset.json

`--shard-size` counts the images' bytes (tar headers add 512 B per member): a split becomes
ceil(bytes / size) shards of equal sample counts.
    vitkit train --data 'SHARDS/train-{000000..000099}.tar' --val-data SHARDS/ ...   # or any URL WebDataset opens

Layout of a sample (WebDataset's convention: files sharing a key): `KEY.jpg|png|…` (the image
bytes as they were, never re-encoded) and `KEY.cls` (class index); KEY is the sample's index in
its split, nine digits (shards of other tools: any key, hashed where an index is needed).
`dataset.json` beside the shards holds the class-name table and each split's sample count;
the count defines an epoch (a stream has no length).

Reading is WebDataset's pipeline (shard list → split_by_node → split_by_worker → tar → samples →
shuffle buffer); vitkit adds only what training needs around it:
- the shard order is a permutation of (seed, epoch) taken before the node split, so ranks get
  disjoint shards, different each epoch;
- every rank takes exactly `steps_per_epoch` batches per epoch (the stream goes on into its
  next pass if a rank's shards run short), so DDP ranks never wait on each other: with as many
  equal shards per rank (what `vitkit shards` writes when the shard count divides), each sample
  is seen exactly once per epoch;
- images are decoded and transformed by the folder path's code, and an unreadable sample is
  skipped and counted the same way;
- a run resumed mid-epoch replays the same order and drops the batches already trained.
"""
from __future__ import annotations

import functools
import io
import itertools
import json
import random
import re
import zlib
from pathlib import Path

import torch
from torch.utils.data import DataLoader, IterableDataset

from ..errors import UsageError
from .folders import collate_skip_bad
from .images import IMAGE_SUFFIXES, UNREADABLE, open_rgb
from .workers import ignore_stop_signals

IMAGE_EXTS = tuple(s.lstrip(".") for s in IMAGE_SUFFIXES)  # a sample's image member: KEY.jpg, KEY.png, ...
MANIFEST = "dataset.json"
_URL = re.compile(r"^[a-z][a-z0-9+.-]*:")


def is_shard_spec(path: str | None) -> bool:
    """Tar shards ('x-{000000..000009}.tar', 'x.tar', a URL) rather than an ImageFolder path."""
    if not path or path == "sample" or str(path).startswith(("list:", "hfds:")):  # data/sources.py
        return False
    p = str(path)
    return ".tar" in p or ("{" in p and ".." in p) or bool(_URL.match(p) and not Path(p).exists())


def expand_shards(spec: str) -> list[str]:
    """Brace-expanded shard URLs (WebDataset's own expansion; '::' separates several specs)."""
    from webdataset.shardlists import expand_urls

    urls = expand_urls(spec)
    local = [u for u in urls if not _URL.match(u)]
    missing = [u for u in local if not Path(u).is_file()]
    if missing:
        raise UsageError(f"--data {spec}: {len(missing)} of {len(urls)} shards do not exist (first: {missing[0]})")
    return urls


def read_manifest(spec: str) -> dict:
    """dataset.json of the folder (or URL prefix) the shards live in."""
    from webdataset.gopen import gopen

    first = expand_shards(spec)[0] if not Path(spec).is_dir() else str(Path(spec) / "x")
    where = first.rsplit("/", 1)[0] + "/" + MANIFEST if "/" in first else MANIFEST
    try:
        with gopen(where, "rb") as f:
            manifest = json.loads(f.read())
    except (OSError, ValueError) as e:  # missing file, bad JSON (ValueError), unreachable URL
        raise UsageError(f"{where}: cannot read the shards' manifest ({type(e).__name__}: {str(e)[:120]}); "
                         f"shards written by `vitkit shards` have one") from None
    if not isinstance(manifest, dict) or "classes" not in manifest or "splits" not in manifest:
        raise UsageError(f"{where}: not a vitkit shard manifest (needs 'classes' and 'splits')")
    return manifest


def eval_shards(val_path: str | None, train_spec: str, manifest: dict, classes: list[str]) -> tuple[str, int] | None:
    """The evaluation shards of a shard-trained run as (spec, samples), or None when `val_path`
    is an ImageFolder. None given: the val (or test) split beside the training shards; a shard
    folder: its val (or test) split; a pattern or URL: as it is. Classes must match training's."""
    def split_of(m: dict, where: str, folder: Path) -> tuple[str, int]:
        name = next((s for s in ("val", "test") if s in m["splits"]), None)
        if name is None:
            raise UsageError(f"{where}: no val/test shards (has {', '.join(m['splits'])}); pass --val-data DIR|SHARDS")
        return str(folder / m["splits"][name]["pattern"]), int(m["splits"][name]["samples"])

    if val_path is None:
        return split_of(manifest, f"--data {train_spec}", Path(expand_shards(train_spec)[0]).parent)
    folder = Path(val_path)
    if not (folder.is_dir() and (folder / MANIFEST).exists()) and not is_shard_spec(val_path):
        return None
    m = read_manifest(val_path)
    if list(m["classes"]) != list(classes):
        raise UsageError(f"--val-data {val_path}: its classes differ from the training shards'")
    if folder.is_dir():
        return split_of(m, f"--val-data {val_path}", folder)
    split = Path(expand_shards(val_path)[0]).name.rsplit("-", 1)[0]  # 'val-000000.tar' → 'val'
    return val_path, int(m["splits"].get(split, {}).get("samples", 0))


def parse_size(text: str) -> int:
    """'256MB' / '64KB' / '1GB' / '1000' → bytes (powers of 1000, as tar shard tools count)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(KB|MB|GB|B)?\s*", str(text), re.IGNORECASE)
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"--shard-size {text!r}: give a size such as 64KB, 256MB or 1GB")
    scale = {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9}[(m.group(2) or "").upper()]
    return int(float(m.group(1)) * scale)


# A tar member's data is padded to 512-byte blocks; the archive ends with 1024 zero bytes padded to
# tarfile's 10240-byte record, so at most 1024 + 10239 bytes follow the last member.
TAR_BLOCK, TAR_END = 512, 1024 + 10239


@functools.lru_cache(maxsize=1)
def _sample_overhead() -> int:
    """Bytes of one sample with a 1-block image, headers included, as WebDataset writes it (PAX
    headers take 3 blocks per member in current versions): measured, not assumed."""
    import tarfile

    import webdataset as wds

    buf = io.BytesIO()
    with wds.TarWriter(buf) as sink:
        for i in range(2):
            sink.write({"__key__": f"{i:09d}", "jpg": b"x", "cls": "0"})
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        members = tar.getmembers()
    return members[2].offset - members[0].offset  # where the second sample starts


def sample_tar_bytes(image_bytes: int) -> int:
    """What one sample takes in a shard: the image member and the .cls member, headers included."""
    return _sample_overhead() - TAR_BLOCK + -(-image_bytes // TAR_BLOCK) * TAR_BLOCK


def samples_per_shard(sizes: list[int], shard_bytes: int) -> int:
    """The largest equal sample count per shard whose every shard file stays within `shard_bytes`
    (consecutive runs of that many samples, in the written order)."""
    budget = shard_bytes - TAR_END
    costs = [sample_tar_bytes(s) for s in sizes]
    if costs and max(costs) > budget:
        raise UsageError(f"--shard-size {shard_bytes} B is smaller than one sample in a tar file "
                         f"({max(costs) + TAR_END} B); choose a larger size")
    n_shards = max(1, -(-sum(costs) // max(budget, 1)))
    while True:  # equal counts: the heaviest run of `per` samples decides
        per = max(1, -(-len(costs) // n_shards))
        if all(sum(costs[i:i + per]) <= budget for i in range(0, len(costs), per)):
            return per
        n_shards += 1


def write_shards(root: Path, out: Path, shard_bytes: int, seed: int = 0, splits=("train", "val", "test")) -> dict:
    """Every split of the ImageFolder `root` as `out/SPLIT-%06d.tar` (samples in a seeded random
    order, so a shard holds a mix of classes) and `out/dataset.json`. Returns the manifest."""
    import webdataset as wds
    from torchvision.datasets.folder import find_classes

    present = [s for s in splits if (root / s).is_dir()]
    if "train" not in present:
        raise UsageError(f"{root}: no train/ folder (ImageFolder layout: train/<class>/<image>)")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder; choose a new folder")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out}: exists and is not empty; choose a new folder")
    classes, to_idx = find_classes(str(root / "train"))
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"format": "vitkit-shards", "classes": classes, "splits": {}}
    for split in present:
        files = sorted((p, to_idx[p.parent.name]) for p in (root / split).glob("*/*")
                       if p.is_file() and p.parent.name in to_idx and p.suffix.lower().lstrip(".") in IMAGE_EXTS)
        random.Random(seed).shuffle(files)
        # Shards with equal sample counts (the last may hold fewer), each tar file within
        # shard_bytes: with as many shards per rank × worker, every rank sees each of its samples
        # once per epoch.
        per_shard = samples_per_shard([f.stat().st_size for f, _ in files], shard_bytes)
        with wds.ShardWriter(str(out / f"{split}-%06d.tar"), maxsize=float("inf"), maxcount=per_shard,
                             verbose=0) as sink:
            for idx, (path, cls) in enumerate(files):
                ext = path.suffix.lower().lstrip(".")
                sink.write({"__key__": f"{idx:09d}", ext: path.read_bytes(), "cls": str(cls)})
            n_shards = sink.shard
        manifest["splits"][split] = {"samples": len(files), "shards": n_shards,
                                     "pattern": f"{split}-{{000000..{n_shards - 1:06d}}}.tar"}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def sample_index(sample: dict) -> int:
    """The sample's index in its split: its key as written by `vitkit shards`, else a hash of it."""
    key = sample["__key__"].rsplit("/", 1)[-1]
    return int(key) if key.isdigit() else zlib.crc32(key.encode())


def decode_sample(sample: dict, transform, aug_key: int | None):
    """(image tensor, class) or None for an unreadable image (counted by collate_skip_bad).

    With `aug_key` the random augmentation is seeded by (key, sample index), as the folder
    path seeds it by (seed, epoch, index): the same whatever the workers, ranks, or a resume.
    """
    ext = next((e for e in IMAGE_EXTS if e in sample), None)
    if ext is None or "cls" not in sample:  # another tool's layout: a user error, not bad images
        raise UsageError(f"shard sample {sample.get('__key__')!r} in {sample.get('__url__')} has members "
                         f"{sorted(k for k in sample if not k.startswith('__'))}; vitkit reads samples of "
                         f"one image ({', '.join(IMAGE_EXTS)}) and a .cls label, as `vitkit shards` writes them")
    try:
        img = open_rgb(io.BytesIO(sample[ext]))
    except UNREADABLE:  # truncated bytes, not an image: counted, the run goes on
        return None
    label = int(sample["cls"])
    if aug_key is None:
        return transform(img), label
    with torch.random.fork_rng(devices=[]):  # workers=0: this is the training process's RNG
        torch.manual_seed((aug_key + sample_index(sample)) % (2**63))
        return transform(img), label


class ShardStream(IterableDataset):
    """One pass over this rank's (and DataLoader worker's) shards as (image, class) samples.

    `decode(sample, transform, aug_key)` turns a raw WebDataset sample into what the stream
    yields; `decode_sample` by default (image tensor, class), or None for an unreadable image.
    """

    def __init__(self, urls: list[str], transform, seed: int, shuffle_buffer: int = 1000,
                 train: bool = True, decode=None):
        self.urls, self.transform, self.seed = list(urls), transform, seed
        self.shuffle_buffer, self.train = shuffle_buffer, train
        self.decode = decode or decode_sample
        self.epoch, self.pass_ = 0, 0

    def __iter__(self):
        import webdataset as wds

        urls = list(self.urls)
        key = (self.seed * 1_000_003 + self.epoch * 1_009 + self.pass_) % (2**63)
        if self.train:  # same permutation on every rank, before the node split: disjoint shards
            random.Random(key).shuffle(urls)
        stages = [wds.SimpleShardList(urls), wds.split_by_node, wds.split_by_worker,
                  wds.tarfile_to_samples(handler=wds.warn_and_continue)]
        if self.train and self.shuffle_buffer > 1:
            info = torch.utils.data.get_worker_info()
            rank_worker = wds.utils.pytorch_worker_info()[0] * 1000 + (info.id if info else 0)
            stages.append(wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer,
                                      rng=random.Random(key * 7919 + rank_worker)))
        for sample in wds.DataPipeline(*stages):
            yield self.decode(sample, self.transform, key * 10_000_019 if self.train else None)


class ShardLoader:
    """Exactly `batches` batches per epoch from a ShardStream, the engine's train loader.

    `set_epoch(epoch, skip_batches, per_proc)` plays the RankSampler's part: a resumed run
    replays the epoch's order and drops the first `skip_batches` batches.
    """

    def __init__(self, stream: ShardStream, per_proc: int, batches: int, workers: int):
        self.stream, self.per_proc, self.batches, self.workers = stream, per_proc, batches, workers
        self.skip = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0, per_proc_batch: int = 0) -> None:
        self.stream.epoch, self.skip = epoch, skip_batches

    def __len__(self) -> int:
        return self.batches - self.skip

    def _passes(self):
        for n in itertools.count():
            self.stream.pass_ = n
            loader = DataLoader(self.stream, batch_size=self.per_proc, num_workers=self.workers,
                                collate_fn=collate_skip_bad, worker_init_fn=ignore_stop_signals)
            got = 0
            for batch in loader:
                got += 1
                yield batch
            if got == 0:
                raise UsageError("a training shard stream yielded no samples on this rank: fewer shards than "
                                 "processes × workers? write smaller shards (vitkit shards --shard-size)")

    def __iter__(self):
        return itertools.islice(self._passes(), self.skip, self.batches)


def shard_eval_loader(spec: str, transform, per_proc: int, workers: int) -> DataLoader:
    """Every sample of the evaluation shards once, split over ranks and workers, in order."""
    stream = ShardStream(expand_shards(spec), transform, seed=0, train=False)
    return DataLoader(stream, batch_size=per_proc, num_workers=workers, collate_fn=collate_skip_bad,
                      worker_init_fn=ignore_stop_signals)
