"""Encode each snippet of a Cityscapes-layout split to an H.264 file, as a dash cam would record it: the
videos `dvsnet calibrate --flow mv` and `--flow dis` are calibrated on in docs/motion-vectors.md.

    PYTHONPATH=src python -m dvsnet synth /tmp/synth_train --split train --sequences 6 --seed 1
    PYTHONPATH=src python benchmarks/encode_synth.py /tmp/synth_train train /tmp/train_mp4
        # crf 23, no B-frames
"""
from __future__ import annotations

import argparse
from pathlib import Path

from dvsnet.data.cityscapes import CityscapesSequences, load_image
from dvsnet.data.motion import encode_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root")
    parser.add_argument("split")
    parser.add_argument("out")
    parser.add_argument("--crf", type=int, default=23)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = CityscapesSequences(args.root, args.split)
    for i in range(len(dataset)):
        item = dataset.snippet(i)
        # synth_000003_000000_leftImg8bit -> synth_000003
        name = Path(item.frame_paths[0]).name.rsplit("_", 2)[0]
        path = encode_video((load_image(p) for p in item.frame_paths), out / f"{name}.mp4", crf=args.crf)
        print(path)


if __name__ == "__main__":
    main()
