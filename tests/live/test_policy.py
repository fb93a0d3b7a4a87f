"""The live clock of dn:fps=F (dvsnet.live.loop.LiveFpsTarget): the bank pays for the time a frame idles."""
import pytest

from dvsnet.config import PipelineConfig
from dvsnet.live.loop import LIVE_KEEP_SHARE, LiveFpsTarget, live_config, live_policy
from dvsnet.pipeline import FrameResult
from dvsnet.regions import region_grid


def frame(total: float, paths: list[str], restarted: bool = False) -> FrameResult:
    regions = region_grid(64, 128, 1, len(paths), 0)
    return FrameResult(
        labels=None,
        paths=paths,
        scores=[0.9] * len(paths),
        regions=regions,
        index=0,
        restarted=restarted,
        timings={"total": total, "segmentation": 0.0, "warp": 0.001 * len(paths)},
    )


def test_the_live_default_is_dn_fps_at_a_share_of_the_sources_rate_and_given_policies_are_kept():
    assert live_policy(25) == f"dn:fps={LIVE_KEEP_SHARE * 25:g}" == "dn:fps=23"
    assert live_policy(30000 / 1001) == "dn:fps=27.57"
    config = live_config(PipelineConfig(), 25, keep_policy=False)
    assert isinstance(config.policy, LiveFpsTarget) and repr(config.policy) == "dn:fps=23"
    assert config.policy.interval == pytest.approx(1 / 25)
    assert live_config(PipelineConfig(), 25, keep_policy=True).policy == "dn:0.92"
    assert live_config(PipelineConfig(policy="always"), 25, keep_policy=False).policy == "always"
    given = live_config(PipelineConfig(policy="dn:fps=10"), 25, keep_policy=True).policy
    # a given dn:fps runs on the live clock too
    assert isinstance(given, LiveFpsTarget) and given.target == 10


def test_a_frame_that_finishes_early_costs_the_bank_its_idle_time_and_outputs_count_as_busy():
    policy = LiveFpsTarget(20.0, interval=0.04)  # the source: 25 fps; the target: 20 frames taken per second
    for _ in range(3):  # past the controller's warm-up frames
        policy.frame_taken(waited=0.0, outside=0.0)
        policy.observe(frame(0.04, ["warp"]))
    bank = policy.bank
    # taken 5 ms after it arrived, 10 ms of pipeline and 5 ms of outputs: the next frame arrives 35 ms after
    # this one was taken, so the frame costs the run 35 ms (15 busy, 20 idle) against the 50 ms of 20 fps
    policy.frame_taken(waited=0.005, outside=0.005)
    policy.observe(frame(0.010, ["warp"]))
    assert policy.bank - bank == pytest.approx(0.05 - 0.035)
    # a frame slower than the interval costs what it took, pipeline and outputs
    bank = policy.bank
    policy.frame_taken(waited=0.0, outside=0.02)
    policy.observe(frame(0.30, ["seg"]))
    assert policy.bank - bank == pytest.approx(0.05 - 0.32)


def test_reset_keeps_the_sources_interval():
    policy = LiveFpsTarget(22.5, interval=0.04)
    policy.bank = 0.5
    policy.reset()
    assert policy.interval == 0.04 and policy.bank == 0.0 and policy.target == 22.5
