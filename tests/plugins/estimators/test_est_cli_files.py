"""``xent estimate`` on hostile files: one stderr line, exit 2, and no hang or unbounded read."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from xent_estimators import _io

from xent_core import BadInputError
from xent_core.cli import main


def run(capsys, *args):
    code = main(["estimate", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("bad.pt", b"garbage, not a zip or a pickle", "not a tensor file"),
        ("latin1.csv", "x\n1\n\xe9\n".encode("latin-1"), "not UTF-8 text"),
        ("huge.csv", b"1," + b"1" * 200_000 + b"\n2,3\n", "200000 characters"),
        ("bad.npy", b"\x93NUMPY\x01\x00garbage", "cannot read"),
    ],
)
def test_bad_files_are_one_line_and_exit_2(capsys, tmp_path, name, data, needle):
    path = write(tmp_path / name, data)
    code, out, err = run(capsys, path, "-e", "plugin-entropy")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    code, out, err = run(capsys, path, "-e", "plugin-entropy", "--json")
    assert code == 2 and needle in json.loads(out)["error"]["message"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    # in a subprocess with a timeout: a regression would block forever on open()
    proc = subprocess.run(
        [sys.executable, "-m", "xent_core.cli", "estimate", str(fifo), "-e", "plugin-entropy"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "not a regular file" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_character_devices_are_refused():
    with pytest.raises(BadInputError, match="not a regular file"):
        _io.load_data("/dev/zero")


def test_text_input_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(_io, "MAX_TEXT_BYTES", 64)
    path = tmp_path / "big.csv"
    path.write_text("1,2\n" * 40)
    with pytest.raises(BadInputError, match=r"save large data as \.npy"):
        _io.load_data(path)
    path.write_text("1,2\n" * 10)  # 40 bytes: under the cap
    assert _io.load_data(path).shape == (10, 2)


def test_labels_file_is_checked_too(capsys, tmp_path):
    x = tmp_path / "x.csv"
    x.write_text("1\n2\n3\n")
    code, _, err = run(capsys, x, "-e", "ksg-mi", "--labels", "/dev/zero")
    assert code == 2 and "not a regular file" in err
