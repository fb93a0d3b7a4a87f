"""Shared CLI options: --write's replace-or-add rule, --threshold, and the pipeline config they build."""
import argparse

import pytest

from dvsnet.cli import build_parser
from dvsnet.cli.options import parse_write, pipeline_config, policy_spec, writes_of
from dvsnet.errors import DvsnetError


@pytest.mark.parametrize("values, expected", [
    (None, ("overlay", "csv")),
    (["color"], ("color",)),                                  # names given replace the defaults
    (["+color"], ("overlay", "csv", "color")),                # +names add to them
    (["labels", "+color"], ("labels", "color")),
    (["+csv", "+labels"], ("overlay", "csv", "labels")),
])
def test_write_replaces_or_adds_to_the_defaults(values, expected):
    assert writes_of(values) == expected


def test_unknown_write_names_are_refused_with_the_valid_ones():
    with pytest.raises(argparse.ArgumentTypeError, match="valid: overlay, labels"):
        parse_write("+colour")


def test_help_says_that_names_replace_the_defaults(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["segment", "--help"])
    assert "REPLACE the defaults" in " ".join(capsys.readouterr().out.split())


def test_segment_options_build_one_pipeline_config():
    args = build_parser().parse_args(["segment", "clip.mp4", "--threshold", "0.8", "--grid", "1x3",
                                      "--flow-width", "0", "--stitch", "core"])
    config = pipeline_config(args)
    assert config.policy == "dn:0.8" and config.grid == (1, 3) and config.flow_width is None
    assert config.stitch == "core" and config.device == "auto" and config.overlap is None
    assert config.max_key_age is None  # the policy's own cap
    assert (config.backend, config.precision) == ("auto", "auto")


@pytest.mark.parametrize("command", ["segment", "evaluate", "calibrate", "demo"])
def test_grid_auto_and_max_key_age_reach_every_pipeline_command(command):
    source = {"demo": [], "calibrate": ["clip.mp4", "--out", "dn.safetensors"]}.get(command, ["clip.mp4"])
    config = pipeline_config(build_parser().parse_args([command, *source]))
    assert config.grid == "auto" and config.max_key_age is None
    args = build_parser().parse_args([command, *source, "--grid", "Auto", "--max-key-age", "0"])
    assert pipeline_config(args).grid == "auto" and pipeline_config(args).max_key_age == 0


@pytest.mark.parametrize("command", ["segment", "evaluate", "demo"])
def test_online_calibration_is_on_unless_no_online(command):
    source = [] if command == "demo" else ["clip.mp4"]
    assert pipeline_config(build_parser().parse_args([command, *source])).online is True
    assert pipeline_config(build_parser().parse_args([command, *source, "--no-online"])).online is False


def test_a_bad_grid_names_both_forms(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["segment", "clip.mp4", "--grid", "2by2"])
    assert "RxC (e.g. 2x2) or be 'auto'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["segment", "clip.mp4"], ["demo"], ["evaluate", "data"],
                                     ["sweep", "data"],
                                     ["calibrate", "clip.mp4", "--out", "dn.safetensors"]])
def test_every_command_that_runs_a_pipeline_takes_backend_and_precision(command):
    args = build_parser().parse_args([*command, "--backend", "onnxruntime", "--precision", "int8"])
    assert (args.backend, args.precision) == ("onnxruntime", "int8")
    if command[0] != "sweep":
        assert (pipeline_config(args).backend, pipeline_config(args).precision) == ("onnxruntime", "int8")


def test_threshold_applies_to_dn_and_oracle_only():
    assert policy_spec("oracle:0.5", 0.7) == "oracle:0.7"
    with pytest.raises(DvsnetError, match="--threshold applies"):
        policy_spec("fixed:5", 0.7)
