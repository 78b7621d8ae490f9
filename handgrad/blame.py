"""Root causes behind a contract failure: what the hand code raised, traced back to the step
that went wrong first."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from handgrad.autograd import run_reference, to_tensors
from handgrad.contract import HandRun
from handgrad.record import Derivation


def output_shape_behind_exception(record: Derivation, inputs: Mapping[str, np.ndarray],
                                  dtype: str, run: HandRun) -> None:
    """When backward raised and the forward's output has another shape than the reference's
    (a pool returning (N, C, 2, 2) for (N, C, 3, 3)), the shape is the likelier root cause: the
    backward was handed an upstream gradient of the forward's wrong shape. The exception is then
    reported as ``wrong-shape`` naming both shapes, with the exception after them."""
    raised = next((i for i, (tensor, kind, _, _) in enumerate(run.problems)
                   if tensor == "(backward)" and kind == "exception"), None)
    if raised is None or record.reference is None or run.out is None:
        return
    try:
        with torch.no_grad():
            ref_out, _ = run_reference(record, to_tensors(record, inputs, dtype))
    except Exception:  # noqa: BLE001 - the autograd check reports a failing reference
        return
    hand_shape, ref_shape = tuple(np.shape(run.out)), tuple(ref_out.shape)
    if hand_shape == ref_shape:
        return
    tensor, _, message, _ = run.problems[raised]
    run.problems[raised] = (tensor, "wrong-shape", f"the NumPy forward returns shape "
                            f"{hand_shape} where the reference returns {ref_shape}: fix the "
                            f"forward's output shape first; then {message}", "fail")
