"""Confidence-score generation matches what the pipeline computes at inference, and is cached once."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import dvsnet
from dvsnet.data.cityscapes import CityscapesSequences
from dvsnet.errors import DvsnetError
from dvsnet.features import key_segmentation_features
from dvsnet.train.confidence import ScoreConfig, cache_path, load_or_generate_scores


def test_targets_equal_the_pipeline_oracle_scores(tiny_tree, tiny_fast):
    """Key frame k, offsets 1..K: the cached Eq. (1) targets are the scores the engine's oracle computes
    when it warps every frame from frame k (oracle:0 always warps)."""
    config = ScoreConfig(data=str(tiny_tree), split="val", segmenter=str(tiny_fast), max_offset=9,
                         keys_per_snippet=1)
    scores = load_or_generate_scores(tiny_tree / "cache", config, progress=False)
    key = int(scores["key"][0])
    assert (scores["key"] == key).all()
    # the targets come from torch fp32 (training's segmenter): the pipeline with the same
    pipe = dvsnet.DVSNet(segmenter=str(tiny_fast), flow="dis", policy="oracle:0", grid=(2, 2),
                         backend="torch")
    frames = CityscapesSequences(tiny_tree, "val")[0].frame_paths[key:key + 10]
    expected = []
    for path in frames:
        out = pipe.step(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
        expected.extend(out.scores if out.index > 0 else [])
    assert scores["target-dis"].shape == (9 * 4,)
    np.testing.assert_allclose(scores["target-dis"], np.asarray(expected, np.float32), atol=1e-6)
    assert np.array_equal(scores["offset"], np.repeat(np.arange(1, 10), 4))
    assert np.array_equal(scores["region"], np.tile(np.arange(4), 9))
    # the moving car makes some regions disagree: targets are informative, not all 1
    assert scores["target-dis"].min() < 1.0
    assert scores["features-dis"].shape == (36, 7, 16, 16)
    # dis-keyseg's extra input: the key region's segmentation summary, as the engine computes it from the
    # key logits it keeps (every region's key is frame k here)
    keyseg = key_segmentation_features(pipe._key_logits).numpy()
    np.testing.assert_allclose(scores["features-keyseg"], np.tile(keyseg, (9, 1, 1, 1)), atol=2e-3)  # fp16


def test_scores_are_cached_once_and_reused(tiny_tree, tiny_fast):
    config = ScoreConfig(data=str(tiny_tree), split="train", segmenter=str(tiny_fast), max_offset=4,
                         keys_per_snippet=2, grids=((2, 2), (1, 2)))
    path = cache_path(tiny_tree / "cache", config)
    first = load_or_generate_scores(tiny_tree / "cache", config, progress=False)
    assert path.is_file()
    stamp = path.stat().st_mtime_ns
    second = load_or_generate_scores(tiny_tree / "cache", config, progress=False)
    assert path.stat().st_mtime_ns == stamp
    # 2 snippets x 2 keys x 4 offsets x (4 + 2 regions)
    assert len(first["target-dis"]) == 2 * 2 * 4 * 6
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert cache_path(tiny_tree / "cache", ScoreConfig(**{**config.__dict__, "max_offset": 5})) != path


def test_snippets_too_short_for_max_offset_fail_clearly(tiny_tree, tiny_fast):
    config = ScoreConfig(data=str(tiny_tree), split="val", segmenter=str(tiny_fast), max_offset=30)
    with pytest.raises(DvsnetError, match="has 30 frames; max_offset 30 needs at least 31"):
        load_or_generate_scores(tiny_tree / "cache", config, progress=False)


def test_cached_scores_are_not_reused_after_the_warp_grid_changes(tiny_tree, tiny_fast, monkeypatch):
    from dvsnet.train import confidence

    config = ScoreConfig(data=str(tiny_tree), split="train", segmenter=str(tiny_fast), max_offset=2)
    path = cache_path(tiny_tree / "cache", config)
    monkeypatch.setattr(confidence, "WARP_UPSCALE", confidence.WARP_UPSCALE * 2)
    assert cache_path(tiny_tree / "cache", config) != path


def test_flownet_features_of_several_grids_share_one_size(tiny_tree, tiny_fast):
    """conv4..6 maps are smaller on a 2x2 region than on the whole frame; the cache pools them to one size
    so one decision network trains on every grid (it pools the same way at inference)."""
    config = ScoreConfig(data=str(tiny_tree), split="val", segmenter=str(tiny_fast), flownet="shipped",
                         max_offset=2, keys_per_snippet=1, grids=((2, 2), (1, 1)))
    scores = load_or_generate_scores(tiny_tree / "cache", config, progress=False)
    assert len(scores["target-flownet"]) == 2 * (4 + 1)
    conv6 = scores["features-flownet-conv6"]
    assert conv6.shape[0] == 2 * (4 + 1)
    whole_frame = scores["grid_rows"] == 1
    assert whole_frame.sum() == 2 and np.isfinite(conv6.astype(np.float32)).all()


@pytest.mark.parametrize("name", ["flownet-conv4", "flownet-conv5", "flownet-image-flow"])
def test_flownet_flows_give_the_features_their_decision_network_trains_on(name, tiny_tree, tiny_fast):
    """dvsnet.flow.FLOWS[name] hands the DN variant of the same name the features the confidence cache stores
    for it (so a `train dn --variant NAME` network runs with `--flow NAME`): same shape, same values."""
    from dvsnet.config import default_overlap
    from dvsnet.data.cityscapes import load_image
    from dvsnet.flow import build_flow
    from dvsnet.models import DN_VARIANTS, DecisionNet, load_segmenter
    from dvsnet.regions import crop_multiple, crop_regions, padded_size, region_grid
    from dvsnet.train.dn import DNTrainConfig, dataset

    estimator = build_flow(name)
    assert estimator.name == name and name in DN_VARIANTS
    common = {"data": str(tiny_tree), "segmenter": str(tiny_fast), "flownet": "shipped", "max_offset": 1,
              "keys_per_snippet": 1}
    samples = dataset(DNTrainConfig(**common, variant=name, cache=str(tiny_tree / "cache")), "val",
                      progress=False)
    scores = load_or_generate_scores(tiny_tree / "cache", ScoreConfig(**common, split="val"), progress=False)
    key = int(scores["key"][0])
    frames = CityscapesSequences(tiny_tree, "val")[0].frame_paths
    regions = region_grid(64, 128, 2, 2, default_overlap(128))
    size = padded_size(regions, crop_multiple(load_segmenter(str(tiny_fast))))
    key_crops, cur_crops = (
        crop_regions(torch.from_numpy(load_image(frames[i])).permute(2, 0, 1).float() / 255, regions, size)
        for i in (key, key + 1))
    flow, features = estimator(key_crops, cur_crops)
    assert flow.shape == (4, 2, size[0] // 8, size[1] // 8)
    assert features.shape == samples.features.shape == (4, *scores[f"features-{name}"].shape[1:])
    assert features.shape[1] == {"flownet-conv4": 96, "flownet-conv5": 128, "flownet-image-flow": 5}[name]
    torch.testing.assert_close(features, samples.features, atol=2e-3, rtol=2e-3)  # the cache holds fp16
    net = DecisionNet(*samples.features.shape[1:2], tuple(samples.features.shape[2:]), variant=name).eval()
    with torch.no_grad():
        assert net(features).shape == (4,)
