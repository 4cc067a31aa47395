"""A model's signature: the input columns it takes (name, Arrow type, nullable) and its output.

Derived from the training table (or a registered dataset version) and the label column; when
the dataset has a contract attached, the signature names it, so that serving can check each
request against the same rules the training data met.

>>> sig = signature_from_table(table, label="delayed")            # doctest: +SKIP
>>> [c.name for c in sig.inputs]                                  # doctest: +SKIP
['month', 'day', 'carrier']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from mlwright.errors import RegistryError


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable}


@dataclass(frozen=True)
class Signature:
    """Input columns in the order the model takes them, the output, and the contract (if any)
    the training data was validated against."""

    inputs: tuple[Column, ...]
    output: Column | None = None
    contract: dict[str, Any] | None = field(default=None)  # {"dataset", "name", "version"}

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [c.to_dict() for c in self.inputs],
                "output": self.output.to_dict() if self.output else None,
                "contract": self.contract}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        output = data.get("output")
        return cls(inputs=tuple(Column(**c) for c in data["inputs"]),
                   output=Column(**output) if output else None, contract=data.get("contract"))


def signature_from_schema(schema: pa.Schema, *, label: str | None = None,
                          features: list[str] | None = None,
                          contract: dict[str, Any] | None = None) -> Signature:
    """The signature of a model trained on columns ``features`` (default: every column but
    ``label``) of a table with ``schema``."""
    names = list(schema.names)
    if label is not None and label not in names:
        raise RegistryError(f"Label column '{label}' is not in the training data (columns: "
                            f"{', '.join(names[:20])}).")
    chosen = features if features is not None else [n for n in names if n != label]
    missing = [n for n in chosen if n not in names]
    if missing:
        raise RegistryError(f"Feature column '{missing[0]}' is not in the training data "
                            f"(columns: {', '.join(names[:20])}).")
    if not chosen:
        raise RegistryError("A model signature needs at least one input column.")

    def column(name: str) -> Column:
        item = schema.field(name)
        return Column(name, str(item.type), item.nullable)

    return Signature(inputs=tuple(column(n) for n in chosen),
                     output=column(label) if label is not None else None, contract=contract)


def signature_from_table(table: Any, *, label: str | None = None,
                         features: list[str] | None = None) -> Signature:
    """Like :func:`signature_from_schema`, for an Arrow, pandas or polars table."""
    from mlwright.data.io import as_arrow_table

    return signature_from_schema(as_arrow_table(table).schema, label=label, features=features)
