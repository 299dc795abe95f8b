"""Helpers for the ONNX zoo models: expose intermediate tensors as graph outputs, read and replace initialisers."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from brainlike.errors import ModelError

__all__ = ["tapped_session", "initializer", "replace_initializers", "consumers", "glorot_uniform"]


def tapped_session(model: Any, taps: list[str]) -> Any:
    """An onnxruntime session on ``model`` with the tensors ``taps`` added as graph outputs.

    Only basic graph optimisations are enabled, so that the extra outputs cannot change how nodes are fused (with
    full optimisation, quantised graphs gave different outputs once tapped). ``OMP_NUM_THREADS``, when set, bounds
    onnxruntime's intra-op threads as it bounds torch's (onnxruntime ignores it otherwise); the thread count changes
    outputs by float32 rounding at most (1 vs 2 threads on ESC-10 clips: YAMNet bit-identical, Basic Pitch
    max |diff| 6e-8).
    """
    import onnx
    import onnxruntime as ort

    present = {o for node in model.graph.node for o in node.output}
    missing = [t for t in taps if t not in present]
    if missing:
        raise ModelError(f"ONNX graph lacks tensors {missing[:3]}")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    existing = {o.name for o in model.graph.output}
    for tap in taps:
        if tap not in existing:
            model.graph.output.append(onnx.helper.make_tensor_value_info(tap, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def initializer(model: Any, name: str) -> np.ndarray:
    """The value of a graph initialiser as a numpy array."""
    from onnx import numpy_helper

    for tensor in model.graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    raise ModelError(f"ONNX graph lacks initializer {name!r}")


def replace_initializers(model: Any, values: dict[str, np.ndarray]) -> Any:
    """A copy of ``model`` whose named initialisers hold ``values`` (same shapes and dtypes required)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    done = set()
    for i, tensor in enumerate(model.graph.initializer):
        if tensor.name in values:
            old = numpy_helper.to_array(tensor)
            new = np.asarray(values[tensor.name], dtype=old.dtype)
            if new.shape != old.shape:
                raise ModelError(f"initializer {tensor.name!r}: shape {new.shape} != {old.shape}")
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(new, tensor.name))
            done.add(tensor.name)
    missing = set(values) - done
    if missing:
        raise ModelError(f"ONNX graph lacks initializers {sorted(missing)[:3]}")
    return model


def consumers(model: Any) -> dict[str, list[Any]]:
    """``{tensor name: [nodes that read it]}``."""
    table: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            table.setdefault(name, []).append(node)
    return table


def glorot_uniform(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Glorot/Xavier-uniform conv kernel (out, in, *k), as Keras initialises convolutions."""
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)

