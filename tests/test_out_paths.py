"""Output paths that cannot be written: every command says so in one line before doing any work,
and a write that fails half way names the user's file, not the temporary one, and leaves nothing."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from vitkit.checkpoint.io import atomic_write, check_out_file, check_out_folder
from vitkit.cli.main import main
from vitkit.errors import UsageError


@pytest.fixture
def blocked(tmp_path):
    """A regular file where a folder is needed: what `--out results.csv/run1` runs into (root
    ignores permission bits, so a read-only folder would not block the test's own user)."""
    f = tmp_path / "afile"
    f.write_text("not a folder\n")
    return f


COMMANDS = {
    # command line, with {b} for the blocked folder
    "train": ["train", "--data", "sample", "--out", "{b}/run", "--epochs", "1"],
    "embed": ["embed", "--checkpoint", "cifar10_vit_tiny", "--data", "sample", "--out", "{b}/f.npy"],
    "predict": ["predict", "--checkpoint", "cifar10_vit_tiny", "sample", "--output", "{b}/r.csv"],
    "shards": ["shards", "sample", "--out", "{b}/shards"],
    "plot": ["plot", "runs/a", "--out", "{b}/cmp.png"],
    "viz": ["viz", "curves", "runs/a", "--out", "{b}/c.png"],
    "convert": ["convert", "cifar10_vit_tiny", "{b}/m", "--to", "vitkit"],
    "convert-timm": ["convert", "cifar10_vit_tiny", "{b}/m.safetensors", "--to", "timm"],
    "export": ["export", "cifar10_vit_tiny", "{b}/m.onnx"],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_unwritable_output_is_one_line_before_any_work(name, blocked, capsys):
    argv = [a.replace("{b}", str(blocked)) for a in COMMANDS[name]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith("error: ") and f"{blocked} is a file, not a folder" in err, err
    assert sorted(p.name for p in blocked.parent.iterdir()) == ["afile"]  # nothing written beside it
    assert blocked.read_text() == "not a folder\n"


def test_checks_name_the_part_in_the_way(tmp_path, blocked):
    check_out_folder(tmp_path / "new" / "deeper", "--out")  # missing folders are fine: they get made
    check_out_file(tmp_path / "new" / "f.png", "--out")
    with pytest.raises(UsageError, match=r"^--out .*/afile/x/y: .*/afile is a file, not a folder$"):
        check_out_folder(blocked / "x" / "y", "--out")
    with pytest.raises(UsageError, match="is a folder; give a file name"):
        check_out_file(tmp_path, "--out")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        check_out_folder(blocked, "--out")  # the folder itself is a file


def test_atomic_write_failure_names_the_destination_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")

    def disk_full(tmp):
        Path(tmp).write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tmp)

    with pytest.raises(OSError) as info:
        atomic_write(target, disk_full)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # the temporary file is gone


def test_atomic_write_through_a_file_names_it(blocked):
    with pytest.raises(NotADirectoryError) as info:  # mkdir's ENOTDIR kept: callers may catch OSError types
        atomic_write(blocked / "sub" / "x.txt", lambda tmp: Path(tmp).write_text("x"))
    assert info.value.filename == str(blocked / "sub" / "x.txt")
    assert info.value.strerror == f"{blocked} is a file, not a folder"


def test_cli_prints_an_os_error_as_path_and_reason(monkeypatch, tmp_path, capsys):
    # A failure after the checks (the disk fills while writing): one line with the user's path, exit 1.
    import vitkit.cli.runs_cmds as runs_cmds

    def full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "cmp.png"))

    monkeypatch.setattr(runs_cmds, "run_plot", full)
    assert main(["plot", "runs/a", "--out", str(tmp_path / "cmp.png")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'cmp.png'}: No space left on device\n"
