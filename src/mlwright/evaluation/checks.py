"""How each kind of gate is judged on an evaluation context: one function per kind.

Every message says what was observed, what was required and, when the gate fails, by how
much; the numbers are in the result as well (``value``, ``threshold``, ``margin``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mlwright.errors import GateError
from mlwright.evaluation.bootstrap import paired_bootstrap
from mlwright.evaluation.context import EvaluationContext, as_frame, pandas
from mlwright.evaluation.fairness import GroupRates, difference_from_rates, group_rates
from mlwright.evaluation.gates import (
    Directional,
    Fairness,
    Gate,
    Invariance,
    MetricThreshold,
    MinimumFunctionality,
    NoRegression,
    SliceMetric,
)
from mlwright.evaluation.metrics import FloatArray, get_metric, metric_value
from mlwright.evaluation.report import GateResult, number

_LISTED = 5  # failing slices, cases or groups named in a message


def _result(gate: Gate, passed: bool, message: str, *, value: float | None = None,
            threshold: float | None = None, margin: float | None = None,
            **details: Any) -> GateResult:
    return GateResult(gate.gate_id, gate.kind, gate.blocking, passed, message, value=value,
                      threshold=threshold, margin=margin, details=details)


def judge_bounds(name: str, value: float, low: float | None,
                 high: float | None) -> tuple[bool, float | None, float | None, str]:
    """(passed, margin, the bound that binds, message) for a value held to [low, high]."""
    if value != value:
        return False, None, None, f"{name} is undefined on these rows"
    margins = []
    if low is not None:
        margins.append((value - low, low))
    if high is not None:
        margins.append((high - value, high))
    margin, bound = min(margins)
    if margin < 0:
        side = "below" if value < bound else "above"
        return False, margin, bound, f"{name} {number(value)} is {number(-margin)} {side} {number(bound)}"
    if low is not None and high is not None:
        return True, margin, bound, f"{name} {number(value)} is within [{number(low)}, {number(high)}]"
    word = "at least" if low is not None else "at most"
    return True, margin, bound, f"{name} {number(value)} is {word} {number(bound)} (by {number(margin)})"


def check_threshold(gate: MetricThreshold, ctx: EvaluationContext) -> GateResult:
    value = ctx.metric(gate.metric)
    passed, margin, bound, message = judge_bounds(gate.metric, value, gate.min, gate.max)
    return _result(gate, passed, message, value=value, threshold=bound, margin=margin,
                   min=gate.min, max=gate.max)


def check_no_regression(gate: NoRegression, ctx: EvaluationContext) -> GateResult:
    champion = ctx.champion_scores()
    if champion is None:
        return _result(gate, True, "no champion to compare with", champion=False)
    metric = get_metric(gate.metric)
    ours = ctx.metric(gate.metric)
    theirs = metric_value(metric, ctx.y, champion, threshold=ctx.threshold)
    diffs = paired_bootstrap(metric, ctx.y, ctx.scores, champion, n_bootstrap=gate.n_bootstrap,
                             seed=gate.seed, threshold=ctx.threshold)
    defined = diffs[~np.isnan(diffs)]
    observed = ours - theirs
    details: dict[str, Any] = {"champion": True, "candidate_value": ours, "champion_value": theirs,
                               "difference": observed, "confidence": gate.confidence,
                               "n_bootstrap": gate.n_bootstrap, "undefined_resamples":
                               int(len(diffs) - len(defined)),
                               "higher_is_better": metric.higher_is_better}
    if observed != observed or not len(defined):
        return _result(gate, False, f"{gate.metric} is undefined on these rows for the candidate "
                       f"or the champion; nothing to compare", **details)
    alpha = 1 - gate.confidence
    low, high = (float(q) for q in np.quantile(defined, [alpha / 2, 1 - alpha / 2]))
    details.update(ci_low=low, ci_high=high)
    # Signed distance from "the data show a regression beyond the tolerance".
    if metric.higher_is_better:
        margin, bound = high + gate.tolerance, -gate.tolerance
    else:
        margin, bound = gate.tolerance - low, gate.tolerance
    head = (f"{gate.metric} {number(ours)} vs champion {number(theirs)}: difference "
            f"{'+' if observed > 0 else ''}{number(observed)} ({number(gate.confidence * 100)}% CI "
            f"{number(low)} to {number(high)})")
    if margin < 0:
        message = (f"{head} shows a regression beyond the tolerance {number(gate.tolerance)}, "
                   f"by at least {number(-margin)}")
    else:
        message = f"{head}; no evidence of a regression beyond the tolerance {number(gate.tolerance)}"
    return _result(gate, margin >= 0, message, value=observed, threshold=bound, margin=margin,
                   **details)


def _split(codes: np.ndarray[Any, Any], k: int) -> list[np.ndarray[Any, Any]]:
    """Row positions of each code 0..k-1, in one sort."""
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.cumsum(np.bincount(codes, minlength=k))[:-1])


def check_slices(gate: SliceMetric, ctx: EvaluationContext) -> GateResult:
    pd = pandas()
    codes, uniques = pd.factorize(ctx.frame[gate.by], use_na_sentinel=False)
    slices: list[dict[str, Any]] = []
    failing: list[tuple[float, str]] = []
    worst: tuple[float, float, float | None, str] | None = None  # margin, value, bound, key text
    keys = [None if pd.isna(key) else key for key in uniques]
    for key, rows in zip(keys, _split(np.asarray(codes), len(keys)), strict=True):
        value = metric_value(gate.metric, ctx.y[rows], ctx.scores[rows], threshold=ctx.threshold)
        judged = len(rows) >= gate.min_rows and value == value
        entry: dict[str, Any] = {"slice": key, "rows": len(rows), "value": value, "judged": judged}
        slices.append(entry)
        if not judged:
            continue
        passed, margin, bound, text = judge_bounds(gate.metric, value, gate.min, gate.max)
        assert margin is not None
        entry.update(passed=passed, margin=margin)
        label = f"{gate.by}={key}"
        if worst is None or margin < worst[0]:
            worst = (margin, value, bound, label)
        if not passed:
            failing.append((margin, f"{label}: {text} ({len(rows)} rows)"))
    judged_count = sum(1 for s in slices if s["judged"])
    skipped = len(slices) - judged_count
    note = (f" ({skipped} of {len(slices)} slices not judged: fewer than {gate.min_rows} rows or "
            f"{gate.metric} undefined)" if skipped else "")
    if worst is None:
        return _result(gate, True, f"no slice of {gate.by} has {gate.min_rows} rows with "
                       f"{gate.metric} defined; nothing judged{note}", by=gate.by, slices=slices)
    margin, value, bound, label = worst
    if failing:
        failing.sort(key=lambda item: item[0])
        listed = "; ".join(text for _, text in failing[:_LISTED])
        more = f"; and {len(failing) - _LISTED} more" if len(failing) > _LISTED else ""
        message = (f"{len(failing)} of {judged_count} judged slices of {gate.by} fail: "
                   f"{listed}{more}{note}")
    else:
        message = (f"{gate.metric} holds on all {judged_count} judged slices of {gate.by}; worst "
                   f"{label} {number(value)}{note}")
    return _result(gate, not failing, message, value=value, threshold=bound, margin=margin,
                   by=gate.by, slices=slices, failing_slices=len(failing))


def _perturbed(gate: Invariance | Directional, ctx: EvaluationContext) -> FloatArray:
    try:
        frame = gate.perturb(ctx.inputs.copy())
    except Exception as exc:
        raise GateError(f"gate {gate.gate_id}: perturb raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(frame, pandas().DataFrame):
        raise GateError(f"gate {gate.gate_id}: perturb returned {type(frame).__name__}; it must "
                        f"return the perturbed DataFrame")
    if len(frame) != ctx.rows:
        raise GateError(f"gate {gate.gate_id}: perturb returned {len(frame)} rows for {ctx.rows}; "
                        f"a perturbation changes values, not rows")
    return ctx.run(ctx.predict, frame, f"predict on the rows perturbed by gate {gate.gate_id}")


def _noise(ctx: EvaluationContext) -> float:
    """Changes this small are floating point noise (the same model on a copy of its input
    may differ in the last bits), not the model reacting to a perturbation."""
    return 1e-9 * max(1.0, float(np.abs(ctx.scores).max()))


def check_invariance(gate: Invariance, ctx: EvaluationContext) -> GateResult:
    change = np.abs(_perturbed(gate, ctx) - ctx.scores)
    change[change <= _noise(ctx)] = 0.0
    observed = float(change.max())
    margin = gate.max_change - observed
    beyond = int((change > gate.max_change).sum())
    details: dict[str, Any] = {"max_change": observed, "mean_change": float(change.mean()),
                               "rows_beyond": beyond,
                               "worst_rows": [int(i) for i in np.argsort(-change, kind="stable")[:_LISTED]
                                              if change[i] > gate.max_change]}
    if margin < 0:
        message = (f"predictions changed by up to {number(observed)} under the perturbation, "
                   f"{number(-margin)} more than the allowed {number(gate.max_change)} ({beyond} of "
                   f"{ctx.rows} rows beyond it)")
    else:
        message = (f"predictions changed by at most {number(observed)} under the perturbation "
                   f"(allowed {number(gate.max_change)})")
    return _result(gate, margin >= 0, message, value=observed, threshold=gate.max_change,
                   margin=margin, **details)


def check_directional(gate: Directional, ctx: EvaluationContext) -> GateResult:
    delta = _perturbed(gate, ctx) - ctx.scores
    noise = _noise(ctx)
    moved = delta > noise if gate.direction == "increase" else delta < -noise
    count = int(moved.sum())
    fraction = count / ctx.rows
    margin = fraction - gate.min_fraction
    verb = "increased" if gate.direction == "increase" else "decreased"
    head = f"predictions {verb} on {count} of {ctx.rows} rows ({number(fraction * 100)}%)"
    required = f"{number(gate.min_fraction * 100)}%"
    if margin < 0:
        message = f"{head}, short of the required {required} by {number(-margin * 100)} points"
    else:
        message = f"{head}; required {required}"
    return _result(gate, margin >= 0, message, value=fraction, threshold=gate.min_fraction,
                   margin=margin, rows_moved=count,
                   worst_rows=[int(i) for i in np.flatnonzero(~moved)[:_LISTED]])


def check_cases(gate: MinimumFunctionality, ctx: EvaluationContext) -> GateResult:
    cases = as_frame(gate.cases, f"the cases of gate {gate.gate_id}")
    missing = [c for c in ctx.features if c not in cases.columns]
    if missing:
        raise GateError(f"gate {gate.gate_id}: the cases lack the feature columns {missing}; "
                        f"give every case every feature the model reads")
    scores = ctx.run(ctx.predict, cases[ctx.features], f"predict on the cases of gate {gate.gate_id}")
    if ctx.task == "binary":
        expected = np.array([ctx.binary_value(v, f"gate {gate.gate_id}") for v in gate.expected])
        got = ctx.labels(scores)
        right = got == expected
    else:
        try:
            expected = np.asarray(gate.expected, dtype=np.float64)
        except (TypeError, ValueError):
            raise GateError(f"gate {gate.gate_id}: a regression's expected answers must be numbers, "
                            f"got {list(gate.expected)[:_LISTED]}") from None
        got = scores
        right = np.abs(scores - expected) <= gate.tolerance
    wrong = np.flatnonzero(~right)
    fraction = 1 - len(wrong) / len(scores)
    failures = [{"case": int(i), "expected": gate.expected[int(i)], "predicted": float(got[i]),
                 "score": float(scores[i])} for i in wrong]
    if len(wrong):
        def text(i: int) -> str:
            extra = f" (score {number(float(scores[i]))})" if ctx.task == "binary" else ""
            return f"case {i} expected {gate.expected[i]!r}, got {number(float(got[i]))}{extra}"
        listed = "; ".join(text(int(i)) for i in wrong[:_LISTED])
        more = f"; and {len(wrong) - _LISTED} more" if len(wrong) > _LISTED else ""
        tolerance = f" within {number(gate.tolerance)}" if ctx.task == "regression" else ""
        message = f"{len(wrong)} of {len(scores)} cases wrong{tolerance}: {listed}{more}"
    else:
        message = f"all {len(scores)} cases right"
    return _result(gate, not len(wrong), message, value=fraction, threshold=1.0,
                   margin=fraction - 1.0, failures=failures)


def _extremes(name: str, rates: list[GroupRates], read: Callable[[GroupRates], float]) -> str:
    defined = sorted((r for r in rates if r.judged and read(r) == read(r)), key=read)
    if len(defined) < 2:
        return f"{name}: fewer than two groups to compare"
    low, high = defined[0], defined[-1]
    return (f"{name} {number(read(high))} for {high.group!r} vs {number(read(low))} "
            f"for {low.group!r}")


def check_fairness(gate: Fairness, ctx: EvaluationContext) -> GateResult:
    rates = group_rates(ctx.y, ctx.labels(ctx.scores), ctx.frame[gate.attribute].to_numpy(dtype=object),
                        min_rows=gate.min_rows)
    value = difference_from_rates(gate.metric, rates)
    margin = gate.max - value
    if gate.metric == "demographic_parity_difference":
        spread = _extremes("positive rate", rates, lambda r: r.selection_rate)
    else:
        spread = "; ".join((_extremes("TPR", rates, lambda r: r.true_positive_rate),
                            _extremes("FPR", rates, lambda r: r.false_positive_rate)))
    words = gate.metric.replace("_", " ")
    if margin < 0:
        message = (f"{words} across {gate.attribute} is {number(value)}, {number(-margin)} above "
                   f"{number(gate.max)} ({spread})")
    else:
        message = f"{words} across {gate.attribute} is {number(value)}, at most {number(gate.max)}"
    groups = [{"group": r.group, "rows": r.rows, "positives": r.positives,
               "selection_rate": r.selection_rate, "true_positive_rate": r.true_positive_rate,
               "false_positive_rate": r.false_positive_rate, "judged": r.judged} for r in rates]
    return _result(gate, margin >= 0, message, value=value, threshold=gate.max, margin=margin,
                   attribute=gate.attribute, groups=groups)


CHECKS: dict[type[Gate], Callable[[Any, EvaluationContext], GateResult]] = {
    MetricThreshold: check_threshold,
    NoRegression: check_no_regression,
    SliceMetric: check_slices,
    Invariance: check_invariance,
    Directional: check_directional,
    MinimumFunctionality: check_cases,
    Fairness: check_fairness,
}


def check(gate: Gate, ctx: EvaluationContext) -> GateResult:
    """Judge one gate."""
    for cls in type(gate).__mro__:
        if cls in CHECKS:
            return CHECKS[cls](gate, ctx)
    raise GateError(f"no way to judge a gate of type {type(gate).__name__}; gates are "
                    f"{', '.join(c.__name__ for c in CHECKS)}")
