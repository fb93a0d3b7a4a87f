"""Online self-calibration of the decision network (docs/adaptive.md): scores that mean the agreement with
the user's own segmenter on the user's own footage, learnt while the video runs, with no calibration step.

The free samples. When a region that has a key frame is segmented again, the pipeline has both what
warping its old key would have given (the flow of that region is at hand: the DN read its features) and the
segmenter's fresh output; their agreement is the DN's own target, the confidence score of paper Eq. (1).
Every re-segmentation is therefore a labelled sample (`learn`), at the cost of one warp of the region.

The model (`AgreementModel`). The predicted agreement of a warped region is a logistic-linear function of
    x = [1, logit(DN score), 10 · photometric residual, 5 · peak residual, log(1 + key age)]
(the residuals: channels 4 and 6 of the DIS motion features, dvsnet.features.motion_features: |grey(cur)
- W(grey(key))| averaged and max-pooled over the region; a DN reading other features gets x without
them), fitted as Bayesian ridge
regression on the logit of the measured scores: prior mean "the DN is right" (weight 1 on its logit, 0
elsewhere; the first frames decide as the DN alone would), prior precision PRIOR_STRENGTH, older samples
forgotten by FORGETTING per sample (footage changes). Solving a 5x5 system per frame costs microseconds.

The decision (`keep_keys`): a key is worth keeping while warping from it loses less than what a new key
costs. With l(a) = 1 - predicted agreement at key age a and L(a) the predicted losses of the frames warped
from this key so far, the region is segmented when
    a · l(a) - L(a) >= key_price(T),        key_price(T) = KEY_PRICE · (1 - T) / T
which is the renewal-reward optimum (segment when the current loss reaches the key's average loss rate
including its price): on steady footage it settles on a regular interval, as the best fixed schedule
does, and it spends keys where the loss grows fast (a cut: at once) and saves them where it does not (a
still). T keeps its direction and range: 0.99 segments nearly every frame, 0.5 few. Until the model has
seen a few samples the key age is capped at WARM_UP_AGE · (1 + key_price(T)) frames (3 at T = 0.99, 4 at
0.92, 12 at 0.5), doubling with every sample, so that the first samples come from young keys, not from one
long stale one; the pipeline's safety cap (dvsnet.config.ONLINE_MAX_KEY_AGE) stays above it all.

State is per video: `reset()` returns everything to the prior. Nothing is drawn at random, so the same
frames give the same decisions.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

KEY_PRICE = 3.0  # agreement-frames a new key is worth at T = 0.5 (key_price)
PRIOR_STRENGTH = 2.0  # precision of the prior "the DN's score is the agreement", in samples of unit features
FORGETTING = 0.95  # weight left to the older samples at each new one (an effective memory of ~20 samples)
WARM_UP_AGE = 3  # key-age cap before the first sample, times 1 + key_price(T); doubles with every sample
LOGIT_EPS = 1e-3  # scores and agreements are clipped to [eps, 1 - eps] before the logit
RESIDUAL_CHANNELS = (4, 6)  # dvsnet.features.motion_features: photometric residual, and its max-pooled peak
RESIDUAL_SCALE = (10.0, 5.0)  # to unit-ish ranges, so one prior strength suits every feature
DIS_FEATURES = ("dis", "dis-keyseg")  # DN variants whose input has the motion features' channel layout


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), LOGIT_EPS, 1 - LOGIT_EPS)
    return np.log(p / (1 - p))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def key_price(threshold: float) -> float:
    """The agreement-frames a new key is worth at threshold T: KEY_PRICE · (1 - T) / T (T = 1: 0, segment
    every frame; T -> 0: keys are never worth it)."""
    return math.inf if threshold <= 0 else KEY_PRICE * (1.0 - threshold) / threshold


class AgreementModel:
    """Bayesian ridge regression of logit(agreement) on features x (D,), learnt one sample at a time.

    Posterior precision P = prior + Σ f^(n-i) x_i x_iᵀ and P·w = prior·w0 + Σ f^(n-i) x_i logit(y_i), with f
    the forgetting factor: old samples fade towards the prior, never below it.
    """

    def __init__(self, prior_mean: np.ndarray, strength: float = PRIOR_STRENGTH,
                 forgetting: float = FORGETTING):
        self.prior_mean = np.asarray(prior_mean, dtype=np.float64)
        self.strength, self.forgetting = strength, forgetting
        self.reset()

    def reset(self) -> None:
        dim = len(self.prior_mean)
        self._prior = np.eye(dim) * self.strength
        self.precision = self._prior.copy()
        self.moment = self._prior @ self.prior_mean
        self.weights = self.prior_mean.copy()
        self.samples = 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(B, D) features -> (B,) predicted agreement in (0, 1)."""
        return sigmoid(np.asarray(x, dtype=np.float64) @ self.weights)

    def learn(self, x: np.ndarray, agreement: float) -> None:
        """One sample: features (D,) and the measured agreement in [0, 1]."""
        x = np.asarray(x, dtype=np.float64)
        f, prior_moment = self.forgetting, self._prior @ self.prior_mean
        self.precision = f * (self.precision - self._prior) + self._prior + np.outer(x, x)
        self.moment = f * (self.moment - prior_moment) + prior_moment + x * logit(agreement)
        self.weights = np.linalg.solve(self.precision, self.moment)
        self.samples += 1


def calibration_features(dn_scores: torch.Tensor, features: torch.Tensor | None, ages: torch.Tensor,
                         residuals: bool) -> np.ndarray:
    """The model's input x per region: (B, D) float64 (see the module docstring). dn_scores (B,) in [0, 1];
    features (B, C, h, w) the DN's input (its residual channels read when `residuals`); ages (B,) frames."""
    columns = [np.ones(len(dn_scores)), logit(dn_scores.numpy())]
    if residuals:
        means = features[:, list(RESIDUAL_CHANNELS)].float().mean((2, 3)).cpu().numpy()  # (B, 2)
        columns += [means[:, i] * scale for i, scale in enumerate(RESIDUAL_SCALE)]
    columns.append(np.log1p(ages.numpy().astype(np.float64)))
    return np.stack(columns, axis=1)


class OnlineCalibration:
    """One video's online self-calibration of a decision network (module docstring).

    variant: the DN variant whose features it reads (its residual channels are used for DIS features).
    warm_up_age: the key-age cap before the first sample at a key price of 0 (see age_limit).
    Per frame the policy calls `predict` (every region with a key), then `keep_keys`; after the frame the
    pipeline hands over the measured scores of the regions it re-segmented (`learn`).
    """

    def __init__(self, variant: str | None = "dis", warm_up_age: int = WARM_UP_AGE):
        self.variant, self.warm_up_age = variant, warm_up_age
        self.residuals = variant in DIS_FEATURES
        dim = 5 if self.residuals else 3
        prior = np.zeros(dim)
        prior[1] = 1.0  # the DN's logit, as it is
        self.model = AgreementModel(prior)
        self.reset()

    def reset(self) -> None:
        """Back to the prior: no samples, no key histories (a new video)."""
        self.model.reset()
        self._pending: np.ndarray | None = None  # (R, D) this frame's features of the regions decided
        self._pending_predicted: np.ndarray | None = None
        self._losses = np.zeros(0)  # per region: predicted losses of the frames warped from its key so far
        self._last_age = np.zeros(0, dtype=np.int64)
        self.abs_error_sum = 0.0  # |predicted - measured| of every sample, predicted before learning it
        self.error_sum = 0.0

    def predict(self, dn_scores: torch.Tensor, features: torch.Tensor | None,
                ages: torch.Tensor) -> torch.Tensor:
        """(B,) DN scores -> (B,) predicted agreement (float32, CPU) of warping each region's key; the
        features are kept for `learn`."""
        x = calibration_features(dn_scores.float().cpu(), features, ages.cpu(), self.residuals)
        predicted = self.model.predict(x)
        self._pending, self._pending_predicted = x, predicted
        return torch.from_numpy(predicted.astype(np.float32))

    def age_limit(self, threshold: float) -> int:
        """The warm-up cap on key age at threshold T: warm_up_age · (1 + key_price(T)) frames, doubled with
        every sample learnt (far above any schedule once calibrated): cheap keys are explored younger."""
        price = min(key_price(threshold), 1e6)
        return max(1, round(self.warm_up_age * (1 + price))) << min(self.model.samples, 20)

    def keep_keys(self, predicted: torch.Tensor, ages: torch.Tensor, threshold: float) -> torch.Tensor:
        """(B,) predicted agreement, (B,) key ages -> (B,) bool: warp (keep the key) or segment. Segment
        when a · l(a) - L(a) >= key_price(T) (module docstring), or when the key reaches age_limit(T)."""
        ages = ages.cpu().numpy().astype(np.int64)
        loss = 1.0 - predicted.double().numpy()
        if len(self._losses) != len(ages):  # a new grid: new key histories
            self._losses, self._last_age = np.zeros(len(ages)), np.zeros(len(ages), dtype=np.int64)
        self._losses[ages <= self._last_age] = 0.0  # a region segmented since: a new key, a new history
        self._last_age = ages.copy()
        regret = ages * loss - self._losses
        keep = (regret < key_price(threshold)) & (ages < self.age_limit(threshold))
        self._losses += np.where(keep, loss, 0.0)
        return torch.from_numpy(keep)

    def learn(self, measured: list[float | None]) -> None:
        """The measured confidence scores of this frame's regions (None where a region was not re-segmented
        or had no key): each one, with the features it was predicted from, is a sample."""
        if self._pending is None:
            return
        for region, score in enumerate(measured):
            if score is None or region >= len(self._pending):
                continue
            error = float(self._pending_predicted[region]) - score
            self.abs_error_sum += abs(error)
            self.error_sum += error
            self.model.learn(self._pending[region], score)
        self._pending = self._pending_predicted = None

    def state(self) -> dict[str, Any]:
        """What a result file records: samples learnt, the mean error (signed and absolute) of the predicted
        agreement on them (each predicted before it was learnt), and the model's weights."""
        n = self.model.samples
        return {"samples": n, "mean_abs_error": self.abs_error_sum / n if n else None,
                "mean_error": self.error_sum / n if n else None,
                "weights": [round(float(w), 4) for w in self.model.weights], "features": self.variant}
