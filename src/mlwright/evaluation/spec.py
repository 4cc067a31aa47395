"""Gates as JSON, so that the registry can store what a version was judged by.

Threshold, regression, slice and fairness gates round-trip exactly. Behavioural gates
(invariance, directional, minimum functionality) are declared with code or data, so their
spec records the name and numbers only; rebuilding one from a spec is refused unless
``skip_behavioural=True`` asks to leave them out.

>>> from mlwright.evaluation.gates import MetricThreshold
>>> to_spec([MetricThreshold("auc", min=0.65)])
[{'kind': 'metric_threshold', 'blocking': True, 'metric': 'auc', 'min': 0.65, 'max': None}]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, fields
from typing import Any

from mlwright.errors import GateError
from mlwright.evaluation.gates import GATE_KINDS, Gate


def to_spec(gates: Iterable[Gate]) -> list[dict[str, Any]]:
    """Each gate's declaration as a JSON-able dict (``kind`` plus its fields)."""
    return [gate.to_spec() for gate in gates]


def gate_from_spec(entry: Mapping[str, Any], *, where: str = "gate") -> Gate:
    """One gate from its spec; a behavioural gate is refused (its code is not in the spec)."""
    if not isinstance(entry, Mapping):
        raise GateError(f"{where} must be a mapping with a 'kind', got {entry!r}")
    kind = entry.get("kind")
    if kind not in GATE_KINDS:
        raise GateError(f"{where}: unknown gate kind {kind!r}; kinds are {', '.join(GATE_KINDS)}")
    cls = GATE_KINDS[kind]
    if cls.behavioural:
        raise GateError(f"{where}: {kind} gate {entry.get('name')!r} is declared with code or data, "
                        f"which a spec does not hold; declare it in Python, or pass "
                        f"skip_behavioural=True to leave it out")
    accepted = {f.name: f for f in fields(cls) if f.init}
    unknown = sorted(set(entry) - set(accepted) - {"kind"})
    if unknown:
        raise GateError(f"{where}: unknown key {unknown[0]!r} for a {kind} gate; it takes "
                        f"{', '.join(accepted)}")
    missing = [name for name, f in accepted.items()
               if f.default is MISSING and f.default_factory is MISSING and name not in entry]
    if missing:
        raise GateError(f"{where}: a {kind} gate needs {', '.join(repr(m) for m in missing)}")
    return cls(**{k: v for k, v in entry.items() if k != "kind"})


def gates_from_spec(spec: Sequence[Mapping[str, Any]], *, skip_behavioural: bool = False) -> list[Gate]:
    """The gates a spec (a list of dicts, as ``to_spec`` writes) declares."""
    if isinstance(spec, str | bytes | Mapping) or not isinstance(spec, Sequence):
        raise GateError(f"a gate spec is a list of gate declarations, got {type(spec).__name__}")
    gates: list[Gate] = []
    for position, entry in enumerate(spec):
        kind = entry.get("kind") if isinstance(entry, Mapping) else None
        if skip_behavioural and kind in GATE_KINDS and GATE_KINDS[kind].behavioural:
            continue
        gate = gate_from_spec(entry, where=f"gate {position} of the spec")
        if any(g.gate_id == gate.gate_id for g in gates):
            raise GateError(f"gate {position} of the spec repeats {gate.gate_id!r}; declare each "
                            f"gate once")
        gates.append(gate)
    return gates


