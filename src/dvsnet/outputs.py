"""What a segmentation run leaves on disk: a numbered run folder and the files inside it.

A run folder `<root>/<prefix>-NNNN` (e.g. runs/segment-0003) is claimed with `os.mkdir`, which fails if
the name exists, so two runs (even two processes at once) never share or overwrite a folder. Inside:

    overlay.mp4             colour labels blended over each frame, the region grid with each region's
                            path (seg red, warp green) and score, running fps (end to end, mean of the
                            last 30 frames), a note on restarts
    labels/<base>_pred_trainIds.png      per-frame train ids (uint8, 255 = ignore)       --write labels
    label_ids/<base>_pred_labelIds.png   Cityscapes label ids, Cityscapes naming          --write label-ids
    color/<base>_pred_color.png          Cityscapes colours (RGB)                         --write color
    frames.csv              one row per frame and region: path, score, stage timings,     --write csv
                            the dn policy's threshold on that frame
    summary.json            config, versions, fps, path shares, workload saved, the dn threshold
                            (first, last, mean, min, max); always written

`<base>` is the frame name with a trailing `_leftImg8bit` removed, so Cityscapes input
`aachen_000000_000019_leftImg8bit.png` gives `aachen_000000_000019_pred_labelIds.png`, which the official
evaluator matches to `aachen_000000_000019_gtFine_labelIds.png`; each kind has its own sub-folder because
that evaluator refuses a folder holding two files for one ground-truth image.

Interrupted runs (the promise): every file is complete or carries `.partial` in its name.
- PNGs and summary.json are written to a temporary name in the same folder and renamed (os.replace).
- overlay.mp4 and frames.csv grow as `overlay.partial.mp4` / `frames.partial.csv` (the csv is flushed
  after every frame, one complete line per region) and are renamed to their final names when the run
  closes, normally or after an error or Ctrl-C the program catches. They then hold exactly the frames
  finished before the stop, and summary.json says `"complete": false` with the reason and the count.
- A run killed outright (SIGKILL, power loss) leaves the PNGs of finished frames (each whole), the
  `.partial` video and csv, at most one hidden `.<name>.<pid>.<hex>.tmp` file, and no summary.json:
  nothing is presented as complete.
- A live run (dvsnet.live) writes its overlay as fragmented MP4 with H.264 through PyAV
  (StreamingVideoOutput: one fragment per frame, flushed as it is written, each frame stamped with its
  capture time), so even the `.partial` file a SIGKILL leaves plays up to its last written frame. File
  runs keep OpenCV's writer (MPEG-4 Part 2, no PyAV needed), whose `.partial` file is unplayable until
  closed.
"""
from __future__ import annotations

import csv
import os
import re
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from dvsnet.atomic import write_bytes_atomic, write_json_atomic
from dvsnet.data.labels import CITYSCAPES, ClassSet, train_ids_to_label_ids
from dvsnet.data.video import quiet_opencv
from dvsnet.errors import DvsnetError
from dvsnet.stats import RunStats

# RGB colours of the region paths on the overlay
PATH_COLORS: dict[str, tuple[int, int, int]] = {"seg": (255, 60, 60), "warp": (60, 230, 60)}

# --write name -> (sub-folder, file suffix); the suffixes follow Cityscapes' own naming
LABEL_KINDS: dict[str, tuple[str, str]] = {
    "labels": ("labels", "_pred_trainIds.png"),
    "label-ids": ("label_ids", "_pred_labelIds.png"),
    "color": ("color", "_pred_color.png"),
}
OUTPUTS: tuple[str, ...] = ("overlay", *LABEL_KINDS, "csv")

FPS_WINDOW = 30  # frames averaged for the running fps drawn on the overlay
FPS_SHOWN_AFTER = 10  # frames after the first (warm-up) before the running fps is drawn: fewer say little

CSV_COLUMNS: tuple[str, ...] = (
    "frame", "name", "region", "row", "col", "path", "score", "key_age", "restarted",
    "flow_ms", "decision_ms", "segmentation_ms", "warp_ms", "stitch_ms", "total_ms", "wall_ms", "threshold",
)


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _promote(partial: Path, path: Path, frames: int) -> Path | None:
    """A finished video's `.partial` file renamed to `path`; removed (None) when it holds no frame."""
    if not frames:
        if partial.exists():
            partial.unlink()
        return None
    os.replace(partial, path)
    return path


def fit_frame(image: np.ndarray, source_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """An overlay frame for a video whose frames are `source_size` (H, W): resized to it when the frame size
    changed mid-run, then padded bottom/right (edge pixels repeated) to the encoder's even `size`."""
    if image.shape[:2] != source_size:
        image = cv2.resize(image, (source_size[1], source_size[0]), interpolation=cv2.INTER_AREA)
    if size != source_size:
        image = cv2.copyMakeBorder(image, 0, size[0] - source_size[0], 0, size[1] - source_size[1],
                                   cv2.BORDER_REPLICATE)
    return image


def create_run_folder(root: str | os.PathLike, prefix: str) -> Path:
    """Create and return `<root>/<prefix>-NNNN` with the next free number (from 0001); never reuses one."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DvsnetError(f"output folder {root} exists and is not a folder") from None
    except OSError as exc:
        raise DvsnetError(f"cannot create output folder {root}: {_describe(exc)}") from None
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)$")
    try:
        taken = [int(m.group(1)) for name in os.listdir(root) if (m := pattern.match(name))]
    except OSError as exc:
        raise DvsnetError(f"cannot read output folder {root}: {_describe(exc)}") from None
    number = max(taken, default=0) + 1
    while True:
        folder = root / f"{prefix}-{number:04d}"
        try:
            os.mkdir(folder)  # atomic: exactly one process gets each name
            return folder
        except FileExistsError:
            number += 1
        except OSError as exc:
            raise DvsnetError(f"cannot write to output folder {root}: {_describe(exc)}") from None


def write_png_atomic(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an (H, W) uint8 map or an H×W×3 uint8 RGB image as PNG, atomically."""
    if image.ndim == 3:
        image = image[:, :, ::-1]  # imencode takes BGR
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image))
    if not ok:
        raise DvsnetError(f"cannot encode {path} as PNG")
    write_bytes_atomic(path, data.tobytes())


def label_file_name(frame_name: str, kind: str) -> str:
    """'aachen_000000_000019_leftImg8bit', 'label-ids' -> 'aachen_000000_000019_pred_labelIds.png'."""
    if kind not in LABEL_KINDS:
        raise DvsnetError(f"unknown label output {kind!r}; valid: {', '.join(LABEL_KINDS)}")
    base = frame_name.removesuffix("_leftImg8bit")
    return base + LABEL_KINDS[kind][1]


def label_image(labels: np.ndarray, kind: str, classes: ClassSet = CITYSCAPES) -> np.ndarray:
    """(H, W) uint8 labels -> what the `kind` PNG holds: the labels, Cityscapes label ids (Cityscapes
    classes only), or H×W×3 RGB colours of `classes`."""
    if kind == "labels":
        return labels
    if kind == "label-ids":
        return train_ids_to_label_ids(labels)
    if kind == "color":
        return classes.colorize(labels)
    raise DvsnetError(f"unknown label output {kind!r}; valid: {', '.join(LABEL_KINDS)}")


def _text(
    image: np.ndarray, text: str, origin: tuple[int, int], scale: float, color: tuple[int, int, int]
) -> None:
    """Text on a dark backing box, readable on any colour at any frame size; origin: its bottom-left."""
    thickness = 1 if scale < 0.8 else 2
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x, y = origin
    pad = max(1, round(2 * scale))
    top, bottom = max(0, y - h - pad), min(image.shape[0], y + base)
    left, right = max(0, x - pad), min(image.shape[1], x + w + pad)
    image[top:bottom, left:right] = image[top:bottom, left:right] // 3  # darkened, the picture still shows
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def text_scale(width: int) -> float:
    """Font scale for frames `width` px wide: about 1/60 of the width per character line, never unreadable."""
    return max(0.3, min(1.2, width / 1100))


def draw_legend(image: np.ndarray, labels: np.ndarray, classes: ClassSet, scale: float) -> None:
    """A legend in the top-right corner: a colour swatch and the name of each class in the frame, largest
    area first, as many as fit in the frame's height (a `+N more` line says how many did not)."""
    counts = np.bincount(labels.ravel(), minlength=256)[: len(classes.names)]
    present = [int(k) for k in np.argsort(-counts, kind="stable") if counts[k] > 0]
    if not present:
        return
    thickness = 1 if scale < 0.8 else 2
    line_height = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][1] + max(
        3, round(8 * scale)
    )
    room = max(1, (image.shape[0] - line_height) // line_height)
    shown = present if len(present) <= room else present[: room - 1]
    lines = [classes.names[k] for k in shown] + (
        [f"+{len(present) - len(shown)} more"] if len(shown) < len(present) else []
    )
    swatch = line_height - max(2, round(4 * scale))
    text_width = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] for t in lines)
    left = max(0, image.shape[1] - text_width - swatch - 3 * max(2, round(4 * scale)))
    bottom = min(image.shape[0], line_height * len(lines) + max(2, round(4 * scale)))
    image[:bottom, left:] = image[:bottom, left:] // 3
    for n, text in enumerate(lines):
        y = line_height * (n + 1)
        x = left + max(2, round(4 * scale))
        if n < len(shown):
            color = tuple(int(c) for c in classes.colors[shown[n]])
            cv2.rectangle(image, (x, y - swatch), (x + swatch, y), color, -1)
        cv2.putText(image, text, (x + swatch + max(2, round(4 * scale)), y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)


def draw_overlay(frame: np.ndarray, labels: np.ndarray, regions: Sequence, paths: Sequence[str],
                 scores: Sequence[float | None] | None = None, *, fps: float | None = None,
                 alpha: float = 0.5, note: str | None = None, classes: ClassSet = CITYSCAPES,
                 legend: bool = True) -> np.ndarray:
    """The overlay video's picture of one frame; returns a new H×W×3 uint8 RGB image.

    frame: H×W×3 uint8 RGB. labels: (H, W) uint8 labels of `classes` (255 drawn black). regions: objects
    with core_top/core_bottom/core_left/core_right (each region's grid cell, without overlap); paths:
    "seg" | "warp" per region, drawn as the cell's border colour (PATH_COLORS) with the path and score
    written in its corner. fps: shown top-left when given. alpha: weight of the label colours. legend:
    the classes in the frame with their colours, top-right.
    """
    width = labels.shape[1]
    image = cv2.addWeighted(frame, 1.0 - alpha, classes.colorize(labels), alpha, 0.0)
    scale = text_scale(width)
    line = max(1, round(width / 400))
    for i, (region, path) in enumerate(zip(regions, paths)):
        color = PATH_COLORS.get(path, (255, 255, 255))
        top, left = region.core_top, region.core_left
        bottom, right = region.core_bottom - 1, region.core_right - 1
        cv2.rectangle(image, (left + line // 2, top + line // 2), (right - line // 2, bottom - line // 2),
                      color, line)
        score = None if scores is None else scores[i]
        tag = path if score is None else f"{path} {score:.2f}"
        _text(image, tag, (left + 3 * line + 2, bottom - 3 * line - 2), scale, color)
    if legend:
        draw_legend(image, labels, classes, max(0.3, 0.75 * scale))
    header = []
    if fps is not None:
        header.append(f"{fps:.1f} fps")
    if note:
        header.append(note)
    if header:
        _text(image, "  ".join(header), (4 * line + 2, round(30 * scale) + 2 * line), scale, (255, 255, 255))
    return image


class VideoOutput:
    """An mp4 (MPEG-4 part 2) written under a `.partial` name and renamed when closed.

    The size is fixed by the first frame (padded up to even numbers, which the codec needs); later
    frames of another size are resized to it. `close()` renames to the final path if at least one
    frame was written (deleting the partial file otherwise) and is safe to call twice.
    """

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path = Path(path)
        self.partial = self.path.with_name(f"{self.path.stem}.partial{self.path.suffix}")
        self.fps = float(fps) if fps and fps > 0 else 10.0
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None  # (height, width) written
        self._source_size: tuple[int, int] | None = None
        self.closed = False

    def write(self, image: np.ndarray) -> None:
        """Append one H×W×3 uint8 RGB frame."""
        height, width = image.shape[:2]
        if self._writer is None:
            self._source_size = (height, width)
            self._size = (height + height % 2, width + width % 2)
            with quiet_opencv():
                self._writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                               (self._size[1], self._size[0]))
            if not self._writer.isOpened():
                raise DvsnetError(f"cannot write video {self.partial} (folder not writable or codec missing)")
        image = fit_frame(image, self._source_size, self._size)
        self._writer.write(np.ascontiguousarray(image[:, :, ::-1]))
        self.frames += 1

    def abort(self) -> None:
        """Stop writing but keep the `.partial` name: for a file that must not look complete."""
        self.closed = True
        if self._writer is not None:
            self._writer.release()

    def close(self) -> Path | None:
        """Finish the file; returns the final path, or None when no frame was written."""
        if self.closed:
            return self.path if self.frames else None
        self.closed = True
        if self._writer is not None:
            self._writer.release()
        return _promote(self.partial, self.path, self.frames)


class StreamingVideoOutput:
    """An overlay video that stays playable if the process dies: H.264 in fragmented MP4 written by PyAV, one
    fragment per frame flushed to disk as it is written, under a `.partial` name renamed when closed.

    x264 with `tune=zerolatency` holds no frame back, so a frame written is a frame on disk. Frames carry
    their own time (`write(image, seconds)`: seconds since the run's start, a 1 ms time base), so a live
    run's overlay plays in real time however many frames it dropped. The size is fixed by the first frame
    (padded to even numbers, later sizes resized to it), as VideoOutput's. Needs PyAV.
    """

    KEYFRAME_SECONDS = 2.0  # an I-frame at least this often: a player can seek, and starts quickly

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path = Path(path)
        self.partial = self.path.with_name(f"{self.path.stem}.partial{self.path.suffix}")
        self.fps = float(fps) if fps and fps > 0 else 10.0
        self.frames = 0
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None  # (height, width) written
        self._source_size: tuple[int, int] | None = None
        self._last_pts = -1
        self.closed = False

    def _open(self, height: int, width: int) -> None:
        from fractions import Fraction

        import av

        self._source_size = (height, width)
        self._size = (height + height % 2, width + width % 2)
        try:
            self._container = av.open(str(self.partial), "w", format="mp4", options={
                "movflags": "empty_moov+default_base_moof+frag_every_frame", "flush_packets": "1"})
        except (av.FFmpegError, OSError) as exc:
            raise DvsnetError(f"cannot write video {self.partial} ({exc})") from None
        stream = self._container.add_stream("libx264", rate=round(self.fps))
        stream.height, stream.width = self._size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        keyint = max(1, round(self.KEYFRAME_SECONDS * self.fps))
        # ultrafast: about a third of veryfast's time per frame for a somewhat larger file; a
        # live run's CPU time is better spent segmenting. One thread: the writer runs beside the pipeline.
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "23", "g": str(keyint),
                          "threads": "1"}
        self._stream = stream

    def write(self, image: np.ndarray, seconds: float | None = None) -> None:
        """Append one H×W×3 uint8 RGB frame shown at `seconds` after the start (None: the next frame at
        `fps`); times that do not grow are moved 1 ms past the previous frame."""
        import av

        height, width = image.shape[:2]
        if self._container is None:
            self._open(height, width)
        image = fit_frame(image, self._source_size, self._size)
        pts = round(1000 * (self.frames / self.fps if seconds is None else seconds))
        pts = max(pts, self._last_pts + 1)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, self._last_pts = pts, pts
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            raise DvsnetError(f"cannot write video {self.partial} ({exc})") from None
        self.frames += 1

    def _finish(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def abort(self) -> None:
        """Stop writing but keep the `.partial` name: for a file that must not look complete."""
        self.closed = True
        self._finish()

    def close(self) -> Path | None:
        """Finish the file; returns the final path, or None when no frame was written."""
        if self.closed:
            return self.path if self.frames else None
        self.closed = True
        self._finish()
        return _promote(self.partial, self.path, self.frames)


class CsvOutput:
    """frames.csv grown as `frames.partial.csv`, flushed after every frame, renamed on close."""

    def __init__(self, path: str | os.PathLike, columns: Sequence[str] = CSV_COLUMNS):
        self.path = Path(path)
        self.partial = self.path.with_name(f"{self.path.stem}.partial{self.path.suffix}")
        try:
            self._file = open(self.partial, "x", newline="")  # noqa: SIM115 (open for the run); "x": never overwrite
        except OSError as exc:
            raise DvsnetError(f"cannot write {self.partial}: {_describe(exc)}") from None
        self._writer = csv.writer(self._file)
        self._writer.writerow(columns)
        self.closed = False

    def write_rows(self, rows: Sequence[Sequence[object]]) -> None:
        """Append the rows of one frame and flush them, so a stop loses no finished frame."""
        self._writer.writerows(rows)
        self._file.flush()

    def close(self) -> Path:
        if not self.closed:
            self.closed = True
            self._file.close()
            os.replace(self.partial, self.path)
        return self.path


def check_writes(writes: Sequence[str], classes: ClassSet = CITYSCAPES) -> None:
    """DvsnetError for an unknown output, or label-id PNGs of a segmenter whose classes are not
    Cityscapes' (label ids only exist for those)."""
    unknown = sorted(set(writes) - set(OUTPUTS))
    if unknown:
        raise DvsnetError(f"unknown output {unknown[0]!r}; valid: {', '.join(OUTPUTS)}")
    if "label-ids" in writes and not classes.cityscapes:
        raise DvsnetError(
            f"label-ids are Cityscapes label ids; this segmenter predicts {len(classes.names)} other "
            "classes: write labels (its class indices) or color instead"
        )


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.3f}"


class RunRecorder:
    """Writes one run's outputs frame by frame (see the module docstring for the files).

    run_dir: an existing folder (from create_run_folder). writes: a subset of OUTPUTS. fps: frame rate
    of the overlay video (the source's, when known). streaming: write the overlay with
    StreamingVideoOutput (live runs: playable after a kill) instead of VideoOutput. extra_columns: more
    frames.csv columns, after CSV_COLUMNS, whose values each `record` gives. Call `record` per frame,
    then `close` once.
    """

    def __init__(self, run_dir: str | os.PathLike, writes: Sequence[str], *, fps: float | None = None,
                 classes: ClassSet = CITYSCAPES, streaming: bool = False, extra_columns: Sequence[str] = ()):
        check_writes(writes, classes)
        self.classes = classes
        self.run_dir = Path(run_dir)
        self.writes = tuple(w for w in OUTPUTS if w in writes)
        video = StreamingVideoOutput if streaming else VideoOutput
        self.video = video(self.run_dir / "overlay.mp4", fps or 0.0) if "overlay" in self.writes else None
        self.extra_columns = tuple(extra_columns)
        self.csv = CsvOutput(self.run_dir / "frames.csv", (*CSV_COLUMNS, *self.extra_columns)) \
            if "csv" in self.writes else None
        for kind in LABEL_KINDS:
            if kind in self.writes:
                (self.run_dir / LABEL_KINDS[kind][0]).mkdir(exist_ok=True)
        self.stats = RunStats()
        self._recent = deque(maxlen=FPS_WINDOW)  # wall seconds of the latest frames, for the running fps
        self._threshold: dict[str, float] = {}  # the dn policy's threshold over the frames (summary)

    def record(
        self,
        name: str,
        frame: np.ndarray,
        result,
        wall_seconds: float,
        *,
        note: str | None = None,
        seconds: float | None = None,
        extra: Sequence[object] = (),
        draw: bool = False,
    ) -> np.ndarray | None:
        """Write one frame's outputs, then count it; returns the overlay picture when one was drawn.

        name: the frame's name (file naming). frame: H×W×3 uint8 RGB input. result: a FrameResult
        (labels, paths, scores, timings, regions, index, restarted). wall_seconds: the time this frame
        took end to end (reading + pipeline + writing of the previous frame), for the running fps.
        note: text for the overlay's header (default: a note on restarted key frames). seconds: when the
        frame is shown in a streaming overlay (None: at the video's fps). extra: the values of the
        `extra_columns`. draw: draw the overlay picture even when no overlay video is written.
        The figures count a frame only once all its files are written, so a write that fails (disk
        full) leaves the summary describing the frames that are complete.
        """
        height, width = result.labels.shape
        label_kinds = [kind for kind in LABEL_KINDS if kind in self.writes]
        # The run folder starts empty, so an existing file means a repeated frame name (two folders of
        # one glob holding the same file name): number it rather than overwrite. No set of names kept,
        # so memory stays flat over long videos.
        if label_kinds and (self.run_dir / LABEL_KINDS[label_kinds[0]][0]
                            / label_file_name(name, label_kinds[0])).exists():
            name = f"{name}_{self.frames:06d}"
        for kind in label_kinds:
            folder = self.run_dir / LABEL_KINDS[kind][0]
            write_png_atomic(
                folder / label_file_name(name, kind), label_image(result.labels, kind, self.classes)
            )
        if self.frames:  # the first frame's time is warm-up (allocations, first kernel calls)
            self._recent.append(wall_seconds)
        overlay = None
        if self.video is not None or draw:
            if note is None and result.restarted and result.index > 0:
                note = f"new size {height}x{width}: key frames restarted"
            overlay = draw_overlay(frame, result.labels, result.regions, result.paths, result.scores,
                                   fps=self.running_fps(), note=note, classes=self.classes)
        if self.video is not None:
            if isinstance(self.video, StreamingVideoOutput):
                self.video.write(overlay, seconds)
            else:
                self.video.write(overlay)
        if self.csv is not None:
            ages = getattr(result, "key_ages", None) or [None] * len(result.paths)
            threshold = getattr(result, "threshold", None)
            t = result.timings
            self.csv.write_rows(
                [
                    (
                        result.index,
                        name,
                        r,
                        region.row,
                        region.col,
                        path,
                        "" if score is None else f"{score:.4f}",
                        "" if age is None else age,
                        int(result.restarted),
                        _ms(t.get("flow")),
                        _ms(t.get("decision")),
                        _ms(t.get("segmentation")),
                        _ms(t.get("warp")),
                        _ms(t.get("stitch")),
                        _ms(t.get("total")),
                        _ms(wall_seconds),
                        "" if threshold is None else f"{threshold:.4f}",
                        *extra,
                    )
                    for r, (region, path, score, age) in enumerate(
                        zip(result.regions, result.paths, result.scores, ages)
                    )
                ]
            )
        self.stats.add(result, wall_seconds, name)
        self._count_threshold(getattr(result, "threshold", None))
        return overlay

    def _count_threshold(self, threshold: float | None) -> None:
        """The summary's `threshold`: frames with one, first, last, mean, min and max (dn policies)."""
        if threshold is None:
            return
        seen = self._threshold
        if not seen:
            seen.update(frames=0, first=threshold, mean=0.0, min=threshold, max=threshold)
        seen["frames"] += 1
        seen["mean"] += (threshold - seen["mean"]) / seen["frames"]
        seen.update(last=threshold, min=min(seen["min"], threshold), max=max(seen["max"], threshold))

    def running_fps(self) -> float | None:
        """End-to-end fps over the last FPS_WINDOW frames; None until FPS_SHOWN_AFTER frames after the
        first (a figure over fewer frames says little)."""
        recent = sum(self._recent)
        return len(self._recent) / recent if len(self._recent) >= FPS_SHOWN_AFTER and recent > 0 else None

    @property
    def frames(self) -> int:
        return self.stats.frames

    def figures(self) -> dict[str, object]:
        """The run's figures so far (dvsnet.stats.RunStats.figures)."""
        return self.stats.figures()

    def close(self, *, complete: bool, reason: str | None = None,
              extra: dict[str, object] | None = None) -> dict[str, object]:
        """Finish the video and csv (renaming them final) and write summary.json; returns the summary.

        complete: False when the run stopped early (error, Ctrl-C); `reason` then says why. `extra`
        (config, versions, source) is merged in front of the figures.
        """
        files: dict[str, str] = {}
        if self.video is not None:
            video = self.video.close()
            if video is not None:
                files["overlay"] = video.name
        if self.csv is not None:
            files["csv"] = self.csv.close().name
        for kind in LABEL_KINDS:
            if kind in self.writes:
                files[kind] = LABEL_KINDS[kind][0] + "/"
        summary: dict[str, object] = {"complete": complete}
        if reason:
            summary["stopped"] = reason
        summary.update(extra or {})
        summary.update(self.figures())
        if self._threshold:
            summary["threshold"] = dict(self._threshold)
        summary["files"] = files
        write_json_atomic(self.run_dir / "summary.json", summary)
        return summary
