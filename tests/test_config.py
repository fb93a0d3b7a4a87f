"""PipelineConfig: one value, validated once, recorded in one format."""
import pytest

from dvsnet import DVSNet, DvsnetError
from dvsnet.config import DN_MAX_KEY_AGE, PipelineConfig, auto_grid, default_overlap, format_grid, parse_grid
from tests.segmenters import ColourSegmenter


def test_overlap_is_resolved_in_one_place():
    config = PipelineConfig()
    assert config.overlap_px(512) == default_overlap(512) == 16
    assert config.replace(overlap=5).overlap_px(512) == 5
    assert config.replace(grid=(1, 1)).overlap_px(512) == 0  # one region has no inner edge to grow


@pytest.mark.parametrize("grid", [(2, 3), "2x3", "2×3", [2, 3]])
def test_grid_is_a_tuple_whatever_it_came_as(grid):
    assert PipelineConfig(grid=grid).grid == (2, 3)
    assert format_grid(PipelineConfig(grid=grid).grid) == "2x3"


@pytest.mark.parametrize("changes, message", [
    ({"grid": "0x2"}, ">= 1"), ({"grid": "2by2"}, "RxC"), ({"overlap": -1}, "overlap"),
    ({"stitch": "mean"}, "stitch mode"), ({"flow_width": 8}, "flow_width"),
    ({"backend": "tensorrt"}, "unknown backend"), ({"precision": "fp16"}, "unknown precision"),
])
def test_bad_values_are_refused_when_the_config_is_made(changes, message):
    with pytest.raises(DvsnetError, match=message):
        PipelineConfig(**changes)


def test_record_round_trip_and_canonical_names():
    config = PipelineConfig(policy="DN:0.900", grid=(1, 2), flow_width=256)
    record = config.to_record(width=512)
    assert record["policy"] == "dn:0.9" and record["grid"] == "1x2" and record["overlap"] == 16
    assert record["overlap_default"] is True and record["flow_width"] == 256
    again = PipelineConfig.from_record(record)
    assert again.to_record(width=512) == record and again.overlap is None
    assert PipelineConfig.from_record(PipelineConfig(overlap=4).to_record(512)).overlap == 4


def test_backend_and_precision_are_recorded_and_an_older_record_reads_as_torch_fp32():
    record = PipelineConfig(backend="onnxruntime", precision="int8").to_record()
    assert (record["backend"], record["precision"]) == ("onnxruntime", "int8")
    assert PipelineConfig.from_record(record).precision == "int8"
    older = {key: value for key, value in record.items() if key not in ("backend", "precision")}
    again = PipelineConfig.from_record(older)  # figures from before the backends came from eager fp32 torch
    assert (again.backend, again.precision) == ("torch", "fp32")


def test_objects_are_recorded_by_name():
    seg = ColourSegmenter()
    record = PipelineConfig(segmenter=seg, policy="fixed:3").to_record()
    assert record["segmenter"] == "ColourSegmenter" and record["policy"] == "fixed:3"


def test_the_pipeline_is_built_from_the_config_and_keeps_it():
    config = PipelineConfig(segmenter=ColourSegmenter(), policy="fixed:2", grid="1x2", overlap=4,
                            stitch="core")
    pipe = DVSNet.from_config(config)
    assert pipe.config is config and pipe.grid == (1, 2) and pipe.stitch_mode == "core"
    keywords = DVSNet(segmenter=config.segmenter, policy="fixed:2", grid=(1, 2), overlap=4, stitch="core")
    assert keywords.config == config


def test_the_callers_dn_policy_object_is_not_changed():
    from dvsnet.policies import DecisionNetwork

    policy = DecisionNetwork(0.9)
    pipe = DVSNet(segmenter=ColourSegmenter(), policy=policy)
    assert policy.net is None and pipe.policy is not policy and pipe.policy.net is not None


def test_parse_grid_refuses_nonsense():
    assert parse_grid("3x4") == (3, 4)
    with pytest.raises(DvsnetError):
        parse_grid("3")


@pytest.mark.parametrize("size, grid", [
    ((256, 512), (1, 1)), ((720, 1280), (1, 1)), ((767, 1535), (1, 1)),
    ((1024, 2048), (2, 2)), ((1080, 1920), (2, 2)), ((2160, 3840), (4, 4)), ((256, 4096), (1, 4)),
])
def test_grid_auto_resolves_to_regions_of_about_512x1024_px(size, grid):
    assert auto_grid(*size) == grid == PipelineConfig().grid_at(*size)
    assert PipelineConfig(grid="2x3").grid_at(*size) == (2, 3)


def test_grid_auto_overlap_and_record_follow_the_frame_size():
    config = PipelineConfig()  # grid "auto"
    assert config.grid == "auto" and PipelineConfig(grid="AUTO").grid == "auto"
    assert config.overlap_px(512, 256) == 0 and config.overlap_px(2048, 1024) == default_overlap(2048) == 64
    record = config.to_record(512, 256)
    assert (record["grid"], record["grid_default"], record["overlap"]) == ("1x1", True, 0)
    assert config.to_record()["grid"] == "auto"
    assert PipelineConfig.from_record(record).grid == "auto"
    explicit = PipelineConfig(grid=(2, 2)).to_record(512, 256)
    assert (explicit["grid"], explicit["grid_default"]) == ("2x2", False)
    assert PipelineConfig.from_record(explicit).grid == (2, 2)
    assert PipelineConfig.from_record({"grid": "1x2"}).grid == (1, 2)  # records from before "auto"


def test_the_key_age_cap_is_the_policys_unless_given():
    from dvsnet.policy_strings import parse_policy

    config = PipelineConfig()
    assert config.key_age_cap(parse_policy("dn:0.92")) == DN_MAX_KEY_AGE == 10
    for policy in ("dn:fps=15", "dn:agree=0.95", "fixed:20", "always", "oracle:0.9"):
        assert config.key_age_cap(parse_policy(policy)) is None, policy
    assert config.replace(max_key_age=0).key_age_cap(parse_policy("dn:0.92")) is None
    assert config.replace(max_key_age=5).key_age_cap(parse_policy("fixed:20")) == 5
    assert PipelineConfig.from_record(config.replace(max_key_age=5).to_record()).max_key_age == 5
    with pytest.raises(DvsnetError, match="max_key_age"):
        PipelineConfig(max_key_age=-1)
