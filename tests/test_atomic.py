import os

import numpy as np
import pytest

from dvsnet.atomic import atomic_path, write_bytes_atomic


def test_success_replaces_the_file_with_usual_permissions(tmp_path):
    target = tmp_path / "a.json"
    target.write_bytes(b"old")
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["a.json"]


def test_a_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.json"]


def test_the_temporary_is_hidden_and_not_named_like_a_finished_file(tmp_path):
    target = tmp_path / "scores.npz"
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        assert tmp.name.startswith(".") and tmp.suffix == ".tmp"
        np.savez(f, x=np.arange(3))
    with np.load(target) as data:
        assert data["x"].tolist() == [0, 1, 2]
    assert os.listdir(tmp_path) == ["scores.npz"]


def test_usual_permissions_even_when_the_writer_replaces_the_temporary(tmp_path):
    # safetensors' save_file writes its own file over the path it is given, with mode 0600
    import torch
    from safetensors.torch import save_file

    target = tmp_path / "weights.safetensors"
    with atomic_path(target) as tmp:
        save_file({"w": torch.zeros(2)}, str(tmp))
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask



def test_a_write_that_fails_is_one_dvsnet_error_line(tmp_path):
    from dvsnet.atomic import write_json_atomic
    from dvsnet.errors import DvsnetError

    with pytest.raises(DvsnetError, match=r"^cannot write .*missing/a\.json: No such file or directory$"):
        write_json_atomic(tmp_path / "missing" / "a.json", {"a": 1})
    assert os.listdir(tmp_path) == []
