"""Decision-network training on cached scores, loading by variant, and its input contract."""
from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import dvsnet
from dvsnet.cli import main
from dvsnet.errors import DvsnetError
from dvsnet.models import DecisionNet, load_decision_net


def test_decision_net_output_is_a_score_per_sample_for_any_feature_size():
    net = DecisionNet(7, (16, 16)).eval()
    with torch.no_grad():
        a = net(torch.rand(3, 7, 16, 16))
        b = net(torch.rand(2, 7, 9, 33))  # pooled to in_size internally
    assert a.shape == (3,) and b.shape == (2,)
    assert ((a >= 0) & (a <= 1)).all()
    with pytest.raises(ValueError, match="expected features"):
        net(torch.rand(1, 5, 16, 16))


def test_decision_net_regresses_a_known_function():
    """Target = mean of channel 0: MSE + Adam gets within 2 points on held-out samples."""
    torch.manual_seed(0)
    net = DecisionNet(2, (4, 4))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    def batch(n):
        x = torch.rand(n, 2, 4, 4)
        return x, x[:, 0].mean((1, 2))
    for _ in range(250):
        x, y = batch(64)
        loss = torch.nn.functional.mse_loss(net(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
    x, y = batch(256)
    with torch.no_grad():
        assert (net(x) - y).abs().mean() < 0.02


def test_train_dn_cli_writes_loadable_weights(tiny_tree, tiny_fast, tmp_path, capsys):
    out = tmp_path / "dn"
    code = main(["train", "dn", "--variant", "dis", "--data", str(tiny_tree), "--segmenter", str(tiny_fast),
                 "--cache", str(tmp_path / "cache"), "--max-offset", "5", "--keys-per-snippet", "2",
                 "--steps", "40", "--batch", "16", "--out", str(out), "--threads", "1", "--no-progress",
                 "--grids", "2x2", "1x1"])
    assert code == 0
    printed = capsys.readouterr().out
    found = re.search(r"val error rate ([\d.]+) points \(2x2 ([\d.]+), 1x1 ([\d.]+);", printed)
    assert found, printed
    overall, on_2x2, on_1x1 = (float(x) for x in found.groups())
    # 4 regions on 2x2 for every region on 1x1: the overall error is their 4:1 weighted mean
    assert abs(overall - (4 * on_2x2 + on_1x1) / 5) < 0.02
    found = re.search(r"by key offset 1-5 ([\d.]+); without features: the training mean ([\d.]+), the mean "
                      r"per grid and key offset ([\d.]+);", printed)
    assert found, printed
    assert abs(float(found.group(1)) - overall) < 0.02  # offsets 1..5 are all the samples here
    # benchmarks/bench_dn_error.py re-scores the run from its folder: the same figures, without training
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_dn_error.py"
    spec = importlib.util.spec_from_file_location("bench_dn_error", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main([str(out), "--output", str(tmp_path / "error.json")]) == 0
    scored = json.loads((tmp_path / "error.json").read_text())[0]
    assert abs(scored["error_points"]["all"] - overall) < 0.01
    assert abs(scored["error_points"]["per_grid"]["1x1"] - on_1x1) < 0.01
    assert abs(scored["baseline_points"]["mean"] - float(found.group(2))) < 0.01
    assert bench.main([str(tmp_path / "missing")]) == 2  # not a run folder: one line, no traceback
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert rows and all(0 <= float(r["val_error_points"]) <= 100 for r in rows)
    net = load_decision_net("dis", path=out / "model.safetensors")
    assert net.in_channels == 7 and net.in_size == (16, 16) and not net.training
    assert (list((tmp_path / "cache").glob("scores-train-*.npz"))
            and list((tmp_path / "cache").glob("scores-val-*.npz")))

    # dis-keyseg: same cache, two more channels; the engine feeds it the key segmentation by itself
    code = main(["train", "dn", "--variant", "dis-keyseg", "--data", str(tiny_tree), "--segmenter",
                 str(tiny_fast), "--cache", str(tmp_path / "cache"), "--max-offset", "5",
                 "--keys-per-snippet", "2", "--steps", "40", "--batch", "16",
                 "--out", str(tmp_path / "dn-keyseg"), "--threads", "1",
                 "--no-progress", "--grids", "2x2", "1x1", "--weight-decay", "0.01"])
    assert code == 0
    assert len(list((tmp_path / "cache").glob("scores-*.npz"))) == 2  # reused, not regenerated
    assert json.loads((tmp_path / "dn-keyseg" / "config.json").read_text())["weight_decay"] == 0.01
    keyseg = load_decision_net("dis-keyseg", path=tmp_path / "dn-keyseg" / "model.safetensors")
    assert keyseg.in_channels == 9 and keyseg.variant == "dis-keyseg"
    with pytest.raises(DvsnetError, match="trained on 'dis-keyseg' features, not 'dis'"):
        load_decision_net("dis", path=tmp_path / "dn-keyseg" / "model.safetensors")
    pipe = dvsnet.DVSNet(segmenter=str(tiny_fast), flow="dis", policy="dn:0.5", grid=(2, 2),
                         dn=tmp_path / "dn-keyseg" / "model.safetensors")  # what --dn FILE does
    assert pipe.policy.net.variant == "dis-keyseg"
    with_mv = dvsnet.DVSNet(segmenter=str(tiny_fast), flow="mv", policy="dn:0.5", grid=(2, 2),
                            dn=tmp_path / "dn-keyseg" / "model.safetensors")  # mv gives it DIS's features
    assert with_mv.flow.dn_variant == "dis" and with_mv.policy.net.variant == "dis-keyseg"
    frame = np.full((64, 128, 3), 90, np.uint8)
    results = [pipe.step(np.roll(frame + np.arange(128, dtype=np.uint8)[None, :, None], 2 * i, axis=1))
               for i in range(3)]
    assert all(s is not None and 0 <= s <= 1 for r in results[1:] for s in r.scores)


def test_a_flownet_variant_runs_with_its_flow_estimator_and_dn_file(tiny_tree, tiny_fast, tmp_path):
    """No DN ships for flownet-image-flow: `train dn --variant flownet-image-flow` makes one, and the pipeline
    runs it with --flow flownet-image-flow --dn FILE; without the file, or with another flow, it says so."""
    out = tmp_path / "dn"
    assert main(["train", "dn", "--variant", "flownet-image-flow", "--data", str(tiny_tree), "--segmenter",
                 str(tiny_fast), "--cache", str(tmp_path / "cache"), "--max-offset", "2",
                 "--keys-per-snippet", "1", "--steps", "5", "--batch", "4", "--out", str(out),
                 "--threads", "1", "--no-progress"]) == 0
    weights = out / "model.safetensors"
    pipe = dvsnet.DVSNet(segmenter=str(tiny_fast), flow="flownet-image-flow", policy="dn:0.5", dn=weights)
    assert pipe.policy.net.variant == "flownet-image-flow" and pipe.policy.net.in_channels == 5
    frame = np.full((64, 128, 3), 90, np.uint8)
    results = [pipe.step(np.roll(frame + np.arange(128, dtype=np.uint8)[None, :, None], 2 * i, axis=1))
               for i in range(3)]
    assert all(s is not None and 0 <= s <= 1 for r in results[1:] for s in r.scores)
    with pytest.raises(DvsnetError, match="train dn --variant flownet-image-flow") as missing:
        dvsnet.DVSNet(segmenter=str(tiny_fast), flow="flownet-image-flow", policy="dn:0.5")
    assert "\n" not in str(missing.value)
    with pytest.raises(DvsnetError, match="reads 'flownet-image-flow' features"):
        dvsnet.DVSNet(segmenter=str(tiny_fast), flow="flownet-conv4", policy="dn:0.5", dn=weights)


def test_unknown_or_unshipped_variant_fails_clearly(tmp_path):
    with pytest.raises(DvsnetError, match="valid: dis"):
        load_decision_net("sift")
    with pytest.raises(DvsnetError, match="not found"):
        load_decision_net("dis", path=tmp_path / "missing.safetensors")


def test_mirrored_dis_features_are_those_of_the_mirrored_region_pair():
    """Known answer: a pair moving right has dx < 0 (flow points current -> key); its mirror moves left."""
    from dvsnet.features import motion_features
    from dvsnet.train.dn import mirror_features

    torch.manual_seed(0)
    key = torch.rand(1, 3, 64, 64)
    cur = torch.roll(key, 3, dims=3)
    flow = torch.zeros(1, 2, 64, 64)
    flow[:, 0] = -3.0
    features = motion_features(key, cur, flow)
    mirrored_flow = flow.flip(-1)
    mirrored_flow[:, 0] = -mirrored_flow[:, 0]
    mirrored = motion_features(key.flip(-1), cur.flip(-1), mirrored_flow)
    assert torch.allclose(mirror_features(features), mirrored, atol=1e-5)
    assert torch.equal(mirror_features(mirror_features(features)), features)


def test_flip_is_refused_for_features_without_a_mirror(tmp_path):
    from dvsnet.train.dn import DNTrainConfig, train_decision_net

    with pytest.raises(DvsnetError, match="--flip mirrors DIS and mv motion features"):
        train_decision_net(DNTrainConfig(out=str(tmp_path / "dn"), variant="flownet-conv6", flip=True))


def test_train_snippets_keeps_the_first_snippets_of_the_training_cache(tiny_tree, tiny_fast, tmp_path):
    """--train-snippets subsets the one cache (a learning curve without regenerating scores); val is whole."""
    from dvsnet.train.dn import DNTrainConfig, dataset

    common = {"data": str(tiny_tree), "segmenter": str(tiny_fast), "cache": str(tmp_path / "cache"),
              "max_offset": 5, "keys_per_snippet": 2, "threads": 1}
    every = dataset(DNTrainConfig(**common), "train", progress=False)
    one = dataset(DNTrainConfig(**common, train_snippets=1), "train", progress=False)
    val = dataset(DNTrainConfig(**common, train_snippets=1), "val", progress=False)
    # 2 snippets x 2 keys x 5 offsets x 4 regions; snippet 0's samples come first, unchanged
    assert len(every.features) == 80 and len(one.features) == 40 and len(val.features) == 40
    assert torch.equal(one.features, every.features[:40]) and torch.equal(one.targets, every.targets[:40])
    assert sorted(set(one.offsets.tolist())) == [1, 2, 3, 4, 5] and set(one.grids.tolist()) == {"2x2"}
    assert len(list((tmp_path / "cache").glob("scores-train-*.npz"))) == 1
    with pytest.raises(DvsnetError, match="--train-snippets 3: the training cache holds 2 snippets"):
        dataset(DNTrainConfig(**common, train_snippets=3), "train", progress=False)

    # --train-max-offset keeps the paper's short key offsets for training; val keeps them all
    near = dataset(DNTrainConfig(**common, train_max_offset=2), "train", progress=False)
    assert len(near.features) == 32 and set(near.offsets.tolist()) == {1, 2}
    assert torch.equal(near.targets, every.targets[torch.from_numpy(every.offsets <= 2)])
    assert len(dataset(DNTrainConfig(**common, train_max_offset=2), "val", progress=False).features) == 40
    with pytest.raises(DvsnetError,
                       match="--train-max-offset 6: the cache holds key offsets up to --max-offset 5"):
        dataset(DNTrainConfig(**common, train_max_offset=6), "train", progress=False)


def _samples(targets, grids, offsets):
    from dvsnet.train.dn import Samples

    targets = torch.tensor(targets, dtype=torch.float32)
    return Samples(torch.zeros(len(targets), 1, 1, 1), targets, np.array(grids), np.array(offsets))


def test_error_breakdown_splits_by_grid_and_by_the_papers_key_offsets():
    from dvsnet.train.dn import error_breakdown

    val = _samples([0.9, 0.8, 0.7, 0.6], ["2x2", "2x2", "1x1", "1x1"], [1, 12, 3, 20])
    preds = torch.tensor([0.9, 0.7, 0.6, 0.6])  # errors 0, 10, 10, 0 points
    got = error_breakdown(preds, val)
    assert got["all"] == pytest.approx(5.0)
    assert got["per_grid"] == pytest.approx({"2x2": 5.0, "1x1": 5.0})
    assert got["per_offsets"] == pytest.approx({"1-10": 5.0, "11-20": 5.0})
    near = _samples([0.9, 0.8], ["2x2", "2x2"], [1, 4])  # no offset beyond 10: no empty range
    assert list(error_breakdown(torch.tensor([0.9, 0.8]), near)["per_offsets"]) == ["1-4"]


def test_age_only_baseline_predicts_the_training_mean_of_each_grid_and_offset():
    from dvsnet.train.dn import baseline_points

    train = _samples([1.0, 0.8, 0.6, 0.4], ["2x2", "2x2", "2x2", "1x1"], [1, 1, 2, 1])
    val = _samples([0.9, 0.5, 0.4, 0.3], ["2x2", "2x2", "1x1", "1x1"], [1, 2, 1, 9])
    got = baseline_points(train, val)
    # the training mean 0.7 everywhere: |0.2| + |0.2| + |0.3| + |0.4| = 1.1 / 4
    assert got["mean"] == pytest.approx(27.5)
    # per (grid, offset): 0.9 (2x2, 1), 0.6 (2x2, 2), 0.4 (1x1, 1); (1x1, 9) unseen -> training mean 0.7
    assert got["mean per grid and offset"] == pytest.approx((0 + 10 + 0 + 40) / 4)


def test_key_starts_spread_the_keys_over_the_frames_that_have_max_offset_after_them():
    from dvsnet.train.mv import key_starts

    assert (key_starts(30, 20, 2) == [0, 9] and key_starts(30, 5, 2) == [0, 24]
            and key_starts(30, 5, 3) == [0, 12, 24])
    assert key_starts(30, 5, 1) == [0] and key_starts(21, 20, 3) == [0]
    with pytest.raises(DvsnetError, match="--max-offset 20 needs at least 21"):
        key_starts(10, 20, 2)


def test_train_dn_mv_samples_the_split_encoded_to_h264_and_the_pipeline_runs_it(av, tiny_tree, tiny_fast,
                                                                                 tmp_path):
    """Every snippet encoded once; per key, every frame after it up to --max-offset sampled as calibrate does
    (chunks of max_offset + 1 frames from the key on); the DN reads the 10 codec features with --flow mv."""
    from dvsnet.data.motion import encode_video, read_motion_frames
    from dvsnet.flow_mv import MV_FEATURES
    from dvsnet.train.dn import DNTrainConfig, dataset, train_decision_net
    from tests.conftest import textured_pan

    config = DNTrainConfig(data=str(tiny_tree), out=str(tmp_path / "dn"), variant="mv",
                           segmenter=str(tiny_fast), cache=str(tmp_path / "cache"), grids=((1, 1), (1, 2)),
                           max_offset=5, keys_per_snippet=2, steps=10, batch=8, val_every=5, threads=1)
    result = train_decision_net(config, progress=False)
    # keys at frames 0 and 24 of 30: 25 + 5 frames after a key, on 1 + 2 regions; 2 training snippets, 1 val
    assert result["train_samples"] == 2 * 30 * 3 and result["val_samples"] == 30 * 3
    videos = sorted((tmp_path / "cache").glob("h264-*/*.mp4"))
    assert len(videos) == 3
    stamps = [v.stat().st_mtime_ns for v in videos]
    val = dataset(config, "val", progress=False)  # from the cache: nothing encoded again
    assert [v.stat().st_mtime_ns for v in videos] == stamps and len(val.targets) == 90
    assert val.features.shape[1:] == (len(MV_FEATURES), 16, 16) and set(val.grids.tolist()) == {"1x1", "1x2"}
    assert (val.offsets.min() == 1 and val.offsets.max() == 5
            and 0 <= val.targets.min() <= val.targets.max() <= 1)
    net = load_decision_net("mv", path=tmp_path / "dn" / "model.safetensors")
    assert net.variant == "mv" and net.in_channels == len(MV_FEATURES)

    video = encode_video(textured_pan(2, 1, 6, 64, 128), tmp_path / "pan.mp4", crf=18)
    pipe = dvsnet.DVSNet(segmenter=str(tiny_fast), flow="mv", policy="dn:0.0", grid=(1, 2),
                         dn=tmp_path / "dn" / "model.safetensors")
    outs = [pipe.step(image, motion=field) for _, image, field in read_motion_frames(video)]
    assert all(o.paths == ["warp", "warp"] and all(0 <= s <= 1 for s in o.scores) for o in outs[1:])
