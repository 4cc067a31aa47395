"""The ONNX flavor: an ``onnx.ModelProto`` (or its serialized bytes), run by ONNX Runtime on CPU.

The predictor maps the frame's columns onto the graph's inputs: a graph with one 2-D input
gets all columns stacked into one matrix; a graph with one input per column gets each column
(by name when the names match, else by position). A classifier converted by skl2onnx answers
with the positive-class probability (binary) or all class probabilities; any other graph
with its first output.

>>> proto = skl2onnx.to_onnx(model, x[:1], options={id(model): {"zipmap": False}})  # doctest: +SKIP
>>> meta = OnnxFlavor().save(proto, folder)                                # doctest: +SKIP
>>> OnnxFlavor().load(folder, meta).predict(frame)                         # doctest: +SKIP
array([0.03, 0.98, ...], dtype=float32)

Raw bytes cannot be told apart from any other bytes, so detection never picks ONNX for
them: register them with ``flavor="onnx"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlwright.errors import RegistryError
from mlwright.registry.flavors._common import (
    atomic,
    framework,
    hashes,
    model_file,
    module_roots,
    type_name,
)

if TYPE_CHECKING:
    from mlwright.registry.flavors import Predictor

FILE = "model.onnx"
_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


class OnnxFlavor:
    """ONNX graphs as ``model.onnx``; loaded into an ONNX Runtime session on the CPU."""

    name: str = "onnx"

    def matches(self, model: object) -> bool:
        return "onnx" in module_roots(model) and type(model).__name__ == "ModelProto"

    def save(self, model: object, folder: Path) -> dict[str, Any]:
        onnx = framework("onnx", self.name)
        if isinstance(model, bytes | bytearray):
            try:
                model = onnx.ModelProto.FromString(bytes(model))
            except Exception as exc:  # protobuf's DecodeError, not importable without protobuf
                raise RegistryError(f"The bytes given to the 'onnx' flavor are not an ONNX model "
                                    f"({exc}).") from exc
        if not isinstance(model, onnx.ModelProto):
            raise RegistryError(f"The 'onnx' flavor saves an onnx.ModelProto or its bytes; got a "
                                f"{type_name(model)}. Convert the model first (skl2onnx, "
                                "torch.onnx.export, onnxmltools).")
        with atomic(folder / FILE) as temporary:
            temporary.write_bytes(model.SerializeToString())
        return {"files": hashes(folder, [FILE]), "onnx_version": onnx.__version__,
                "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
                "inputs": [i.name for i in model.graph.input],
                "outputs": [o.name for o in model.graph.output]}

    def load(self, folder: Path, meta: dict[str, Any]) -> Predictor:
        path = model_file(folder, FILE, self.name, meta)
        ort = framework("onnxruntime", self.name)
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own unexported exception classes
            raise RegistryError(f"ONNX Runtime cannot load the model file {path} ({exc}); check the "
                                "graph with onnx.checker.check_model, or register it again.") from exc
        return OnnxPredictor(session)


class OnnxPredictor:
    """An ONNX Runtime session behind ``predict(frame)``."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.inputs = session.get_inputs()
        self.output = _pick_output(session.get_outputs())

    def predict(self, frame: Any) -> np.ndarray:
        (result,) = self.session.run([self.output.name], self._feed(frame))
        if self.output.type.startswith("seq(map("):
            # ZipMap: one {class: probability} dict per row. Only the graph makes this loop
            # necessary; export with options={id(model): {"zipmap": False}} to avoid it.
            keys = sorted(result[0]) if result else []
            result = np.array([[row[k] for k in keys] for row in result], dtype=np.float32)
        out = np.asarray(result)
        if out.ndim == 2 and out.shape[1] == 2 and _is_probability(self.output.name, self.output.type):
            return out[:, 1]
        if out.ndim > 1 and all(d == 1 for d in out.shape[1:]):
            return out.reshape(out.shape[0])
        return out

    def _feed(self, frame: Any) -> dict[str, np.ndarray]:
        columns = list(frame.columns)
        if len(self.inputs) == 1 and len(self.inputs[0].shape) == 2:
            only = self.inputs[0]
            return {only.name: frame.to_numpy(dtype=_dtype(only.type))}
        if len(self.inputs) != len(columns):
            raise RegistryError(
                f"The ONNX graph takes inputs {[i.name for i in self.inputs]}, which cannot be fed "
                f"from the {len(columns)} columns {columns}: give one column per input, or export "
                "the graph with one 2-D input for all columns.")
        by_name = {i.name for i in self.inputs} <= set(columns)
        feed = {}
        for position, spec in enumerate(self.inputs):
            values = frame[spec.name if by_name else columns[position]].to_numpy(dtype=_dtype(spec.type))
            feed[spec.name] = values.reshape(-1, 1) if len(spec.shape) == 2 else values
        return feed


def _pick_output(outputs: list[Any]) -> Any:
    """The probabilities of a classifier graph if it has them, else the first output."""
    for output in outputs:
        if _is_probability(output.name, output.type):
            return output
    return outputs[0]


def _is_probability(name: str, kind: str) -> bool:
    # skl2onnx names them "probabilities" (ZipMap off) or "output_probability" (ZipMap on).
    return "probabilit" in name.lower() and (kind.startswith("seq(map(") or kind.startswith("tensor(float"))


def _dtype(kind: str) -> Any:
    if kind not in _DTYPES:
        raise RegistryError(f"The ONNX graph has an input of type {kind}, which mlwright cannot fill "
                            f"from a DataFrame column; supported: {', '.join(_DTYPES)}.")
    return _DTYPES[kind]
