"""What every trainer shares: seeding, CSV logs, checkpoints with resume, configs saved as JSON.

A run folder (`--out`) holds:
  config.json        the resolved config (frozen dataclass as JSON), written before the first step
  log.csv            one row per logged step / validation (appended across resumes)
  checkpoint.pt      model + optimiser + scheduler + step + RNG states, rewritten atomically every few minutes
  model.safetensors  the weights at the latest validation (fp32, arch recorded in metadata)
A run folder that already holds a checkpoint is only continued with `resume=True`; it is never
overwritten silently.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dvsnet.atomic import atomic_path, write_text_atomic
from dvsnet.devices import pick_device
from dvsnet.errors import DvsnetError


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A frozen dataclass as a JSON-able dict (tuples become lists, paths strings)."""
    out = {}
    for key, value in dataclasses.asdict(config).items():
        out[key] = str(value) if isinstance(value, Path) else value
    return out


def save_config(config: Any, path: Path) -> None:
    write_text_atomic(path, json.dumps(config_to_dict(config), indent=2, sort_keys=True) + "\n")


def prepare_run(out: Path, config: Any, resume: bool) -> Path | None:
    """Create the run folder, save its config; returns the checkpoint to resume from (or None).

    Raises DvsnetError when the folder already holds a checkpoint and `resume` is False, or when
    resuming with a config that differs from the saved one in anything but the step budget.
    """
    out = Path(out)
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists() and not resume:
        raise DvsnetError(f"{out} already holds a training run; "
                          "pass --resume to continue it or pick another --out")
    if resume and not checkpoint.exists():
        raise DvsnetError(f"--resume given but {checkpoint} does not exist")
    if resume and (out / "config.json").exists():
        saved = json.loads((out / "config.json").read_text())
        now = json.loads(json.dumps(config_to_dict(config)))
        changed = sorted(k for k in set(saved) | set(now)
                         if saved.get(k) != now.get(k) and k not in ("steps", "out", "resume", "threads"))
        if changed:
            raise DvsnetError(f"cannot resume {out}: config differs from the saved one in "
                              f"{', '.join(changed)}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.json")
    except OSError as exc:
        raise DvsnetError(f"cannot write the run folder {out}: {exc.strerror or exc}") from None
    return checkpoint if resume else None


class CsvLog:
    """Append rows (dicts) to a CSV file; the header is the union of keys seen in the first row."""

    def __init__(self, path: Path, fields: list[str]) -> None:
        self.path = Path(path)
        self.fields = fields
        if not self.path.exists():
            with self.path.open("w", newline="") as f:
                csv.DictWriter(f, fieldnames=fields).writeheader()

    def write(self, **row: Any) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore").writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )


def save_checkpoint(path: Path, **state: Any) -> None:
    """torch.save `state` (module/optimiser state dicts, step, ...) plus RNG states, atomically."""
    state = dict(state)
    state["rng"] = {"python": random.getstate(), "numpy": np.random.get_state(),
                    "torch": torch.get_rng_state()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by save_checkpoint and restore the RNG states."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    rng = state.pop("rng")
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    return state


def ship_weights(run: str | Path, name: str, weights_dir: str | Path | None = None) -> Path:
    """Copy a run's model.safetensors into the package as fp16 `<name>.safetensors` + `<name>.json`.

    The JSON holds the run's resolved config, the weights' metadata (arch, step, validation figure) and
    the run folder it came from. Returns the weights path.
    """
    from safetensors.torch import save_file

    from dvsnet.models.weights import SHIPPED_DIR, read_metadata, read_tensors

    run = Path(run)
    source = run / "model.safetensors"
    if not source.is_file():
        raise DvsnetError(f"{source} does not exist; train first")
    target_dir = Path(weights_dir) if weights_dir is not None else SHIPPED_DIR
    if not target_dir.is_dir():
        raise DvsnetError(f"weights folder {target_dir} does not exist")
    metadata = read_metadata(source)
    loads_as = shipped_name(metadata)
    if loads_as is not None and name != loads_as:
        raise DvsnetError(f"{source} holds {metadata['arch']!r} weights, which load by the name "
                          f"{loads_as!r}, not {name!r}; pass --name {loads_as}")
    state = {k: (v.half() if v.is_floating_point() else v).contiguous()
             for k, v in read_tensors(source).items()}
    target = target_dir / f"{name}.safetensors"
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else None
    info = {"name": name, "metadata": metadata, "config": config, "run": str(run)}
    try:
        with atomic_path(target) as tmp:
            save_file(state, str(tmp), metadata={**metadata, "dtype": "float16"})
        write_text_atomic(target.with_suffix(".json"), json.dumps(info, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise DvsnetError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


def shipped_name(metadata: dict[str, str]) -> str | None:
    """The name `load_segmenter` / `load_flownet` / `load_decision_net` find weights of this kind by
    (fast, accurate, flownet, dn-<variant>); None when the metadata does not say."""
    arch = metadata.get("arch")
    if arch == "decision":
        return f"dn-{metadata['variant']}" if metadata.get("variant") else None
    return arch


def start_run(out: Path, config: Any, resume: bool) -> tuple[Path | None, torch.device]:
    """Everything a training run does first: run folder + config (see prepare_run), torch threads, seeds,
    device. Returns (checkpoint to resume from or None, device)."""
    checkpoint = prepare_run(out, config, resume)
    torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    return checkpoint, pick_device(config.device)


def restore(checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Load `checkpoint` into model and optimizer (RNG states too); returns the rest of its state
    (step, ...)."""
    state = load_checkpoint(checkpoint)
    model.load_state_dict(state.pop("model"))
    optimizer.load_state_dict(state.pop("optimizer"))
    return state

