"""Policy strings: `name:value` (and `name:key=value`) parsed into policy objects, with one-line errors.

The forms (docs/design.md §3): dn:T, dn:fps=F, dn:agree=A, fixed:L, diff:D, flow:F, oracle:T, always;
what each does: dvsnet.policies (the policies) and dvsnet.control (the targets, built on dn).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dvsnet.control import AgreementTarget, FpsTarget
from dvsnet.errors import DvsnetError
from dvsnet.policies import (
    AlwaysSegment,
    DecisionNetwork,
    FixedInterval,
    FlowMagnitude,
    FrameDifference,
    Oracle,
    Policy,
)


def _threshold(value: float) -> str | None:
    return None if 0.0 <= value <= 1.0 else f"threshold must be in [0, 1], got {value:g}"


def _interval(value: int) -> str | None:
    return None if value >= 1 else f"key-frame interval must be >= 1 frame, got {value}"


def _limit(value: float) -> str | None:
    return None if value >= 0 else f"limit must be >= 0, got {value:g}"


def _rate(value: float) -> str | None:
    return None if 0 < value < float("inf") else f"frame rate must be > 0 frames/s, got {value:g}"


def _agreement(value: float) -> str | None:
    return None if 0 < value <= 1 else f"agreement must be in (0, 1], got {value:g}"


@dataclass(frozen=True)
class PolicyKind:
    """A policy string's form `name:value`: the class it builds, the value's type, its check, an example
    value and the letter the docs use for it (value_type None: the kind takes no value); `named`: the
    kinds of its `name:key=value` forms, parsed the same way."""

    build: Callable
    value_type: type | None = None
    check: Callable[[object], str | None] | None = None
    example: str = ""
    letter: str = ""
    named: dict[str, PolicyKind] = field(default_factory=dict)  # `name:key=value` forms (dn:fps=F)


POLICIES: dict[str, PolicyKind] = {
    "dn": PolicyKind(DecisionNetwork, float, _threshold, "0.92", "T", named={
        "fps": PolicyKind(FpsTarget, float, _rate, "15", "F"),
        "agree": PolicyKind(AgreementTarget, float, _agreement, "0.95", "A"),
    }),
    "fixed": PolicyKind(FixedInterval, int, _interval, "5", "L"),
    "diff": PolicyKind(FrameDifference, float, _limit, "16", "D"),
    "flow": PolicyKind(FlowMagnitude, float, _limit, "8", "F"),
    "oracle": PolicyKind(Oracle, float, _threshold, "0.9", "T"),
    "always": PolicyKind(AlwaysSegment),
}
POLICY_FORMS = ", ".join(
    form for name, kind in POLICIES.items()
    for form in ([f"{name}:{kind.letter}"] if kind.value_type else [name])
    + [f"{name}:{key}={sub.letter}" for key, sub in kind.named.items()]
)


def parse_policy(spec: str | Policy) -> Policy:
    """'dn:0.92' -> DecisionNetwork(0.92), etc. Policy objects pass through. Bad strings -> DvsnetError."""
    if not isinstance(spec, str):
        return spec
    name, colon, arg = spec.strip().lower().partition(":")
    kind = POLICIES.get(name)
    if kind is None or (kind.value_type is None and colon):
        raise DvsnetError(f"unknown policy {spec!r}; valid forms: {POLICY_FORMS}")
    if kind.value_type is None:
        return kind.build()
    key, equals, named_arg = arg.partition("=")
    if equals and kind.named:
        if key not in kind.named:
            forms = ", ".join(f"{name}:{k}={sub.letter}" for k, sub in kind.named.items()) or "none"
            raise DvsnetError(f"policy {spec!r}: unknown target {key!r}; valid: {forms}")
        prefix, kind, arg = f"{name}:{key}=", kind.named[key], named_arg
    else:
        prefix = f"{name}:"
    if not arg:
        raise DvsnetError(f"policy {spec!r} needs a value, e.g. {prefix}{kind.example}")
    try:
        value = kind.value_type(arg)
    except ValueError:
        whole = "whole " if kind.value_type is int else ""
        raise DvsnetError(f"policy {spec!r}: {arg!r} is not a {whole}number") from None
    problem = kind.check(value)
    if problem:
        raise DvsnetError(f"policy {spec!r}: {problem}")
    return kind.build(value)


def describe_policy(spec: str | Policy) -> str:
    """The canonical policy string ('DN:0.920' -> 'dn:0.92'); objects by their repr."""
    return repr(parse_policy(spec)) if isinstance(spec, str) else repr(spec)
