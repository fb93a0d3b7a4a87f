"""Confidence-score generation matches what the pipeline computes at inference, and is cached once."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import dvsnet
from dvsnet.errors import DvsnetError
from dvsnet.flow import key_segmentation_features
from dvsnet.train.confidence import ScoreConfig, cache_path, list_snippets, load_or_generate_scores


def test_targets_equal_the_pipeline_oracle_scores(tiny_tree, tiny_fast):
    """Key frame 0, offsets 1..K: the cached Eq. (1) targets are the scores the engine's oracle computes
    when it warps every frame from frame 0 (oracle:0 always warps)."""
    config = ScoreConfig(data=str(tiny_tree), split="val", segmenter=str(tiny_fast), max_offset=9,
                         keys_per_snippet=1)
    scores = load_or_generate_scores(tiny_tree / "cache", config, progress=False)
    assert (scores["key"] == 0).all()
    pipe = dvsnet.DVSNet(segmenter=str(tiny_fast), flow="dis", policy="oracle:0", grid=(2, 2))
    frames = list_snippets(tiny_tree, "val")[0]
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
    # key logits it keeps (every region's key is frame 0 here)
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
    config = ScoreConfig(data=str(tiny_tree), split="val", segmenter=str(tiny_fast), max_offset=20)
    with pytest.raises(DvsnetError, match="max_offset 20 needs at least 21"):
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
