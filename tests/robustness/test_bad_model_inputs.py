"""Bad input at the model API, weights files and checkpoints: a clear error of a documented type, naming
what is wrong (and the file), never a silently wrong result. Cases in tests/models/test_detector.py
(1-channel, int64, NaN, wrong num_classes/reg_max, truncated weights) are not repeated.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from gfocal.engine import load_checkpoint, save_checkpoint
from gfocal.models import WeightsError, gfl_small, load_model, save_weights

SIZE = 64


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return gfl_small(3, min_size=SIZE, max_size=SIZE)


@pytest.fixture(scope="module")
def detecting_model():
    """An untrained model that detects: class logits around 0 (scores ~0.5) instead of the prior's
    -4.6 (~0.01, below the 0.05 threshold), so checks on the detections have detections to check."""
    torch.manual_seed(0)
    model = gfl_small(3, min_size=SIZE, max_size=SIZE).eval()
    with torch.no_grad():
        model.head.cls_out.bias.zero_()
    return model


def target(boxes, labels, box_dtype=torch.float32, label_dtype=torch.long):
    return {
        "boxes": torch.tensor(boxes, dtype=box_dtype).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=label_dtype),
    }


def image(*shape, dtype=torch.float32, fill=0.5):
    return torch.full(shape, fill, dtype=dtype)


INPUT_CASES = [
    pytest.param(
        image(2, 3, 32, 32), None, ValueError, r"non-empty list of Tensor\[3, H, W\]", id="batched-4d-tensor-not-a-list"
    ),
    pytest.param([], None, ValueError, "non-empty list", id="empty-list"),
    pytest.param(
        [image(4, 32, 32)], None, ValueError, r"images\[0\] has shape \(4, 32, 32\).*RGB", id="rgba-4-channels"
    ),
    pytest.param(
        [image(32, 32, 3)],
        None,
        ValueError,
        r"images\[0\] has shape \(32, 32, 3\).*channels first",
        id="channels-last-hwc",
    ),
    pytest.param([image(3, 0, 32)], None, ValueError, r"images\[0\] is empty", id="zero-height"),
    pytest.param(
        [image(3, 32, 32, dtype=torch.bool)], None, TypeError, r"images\[0\] has dtype torch.bool", id="bool-image"
    ),
    pytest.param([np.zeros((3, 32, 32), np.float32)], None, TypeError, r"images\[0\] is a ndarray", id="numpy-array"),
    pytest.param([image(3, 32, 32, fill=float("inf"))], None, ValueError, "NaN or infinite", id="inf-pixels"),
    pytest.param(
        [image(3, 32, 32, fill=128.0)],
        None,
        ValueError,
        r"float images must be in \[0, 1\]",
        id="float-0-255-not-scaled",
    ),
    pytest.param([image(3, 32, 32, fill=-1.8)], None, ValueError, r"not normalised", id="float-already-normalised"),
    pytest.param(
        [image(3, 32, 32)],
        [target([[1, 1, 5, 5]], [0.0], label_dtype=torch.float32)],
        ValueError,
        "must be integers",
        id="float-labels",
    ),
    pytest.param(
        [image(3, 32, 32)],
        [target([[1, 1, 5, 5]], [-1])],
        ValueError,
        r"\[0, 2\].*background excluded",
        id="negative-label",
    ),
    pytest.param(
        [image(3, 32, 32)],
        [{"boxes": torch.zeros(1, 5), "labels": torch.zeros(1, dtype=torch.long)}],
        ValueError,
        r"shape \(1, 5\); expected \[M, 4\]",
        id="boxes-with-5-columns",
    ),
    pytest.param(
        [image(3, 32, 32)],
        [{"boxes": torch.zeros(0, 4)}],
        ValueError,
        r"needs 'boxes' and 'labels'",
        id="target-without-labels",
    ),
    pytest.param(
        [image(3, 32, 32)],
        [target([[1, 1, 5, 5], [2, 2, 6, 6]], [0])],
        ValueError,
        "1 labels for 2 boxes",
        id="labels-and-boxes-differ-in-length",
    ),
    pytest.param(
        [image(3, 32, 32)], [target([[1, 1, float("inf"), 5]], [0])], ValueError, "NaN or infinite", id="inf-box"
    ),
]


@pytest.mark.parametrize("images, targets, error, message", INPUT_CASES)
def test_bad_model_input_names_what_is_wrong(model, images, targets, error, message):
    model.train(targets is not None)
    with pytest.raises(error, match=message):
        model(images, targets)


@pytest.mark.parametrize(
    "shape, dtype",
    [((3, 1, 1), torch.uint8), ((3, 2, 900), torch.uint8), ((3, 40, 30), torch.float64), ((3, 40, 30), torch.float16)],
    ids=["one-pixel", "aspect-1-to-450", "float64", "float16"],
)
def test_unusual_but_valid_images_give_finite_detections_in_their_own_pixels(detecting_model, shape, dtype):
    with torch.no_grad():
        (detection,) = detecting_model([torch.rand(shape).mul(255 if dtype == torch.uint8 else 1).to(dtype)])
    boxes = detection["boxes"]
    assert len(boxes) > 0
    assert torch.isfinite(boxes).all() and torch.isfinite(detection["scores"]).all()
    assert (boxes[:, 2] <= shape[2] + 1e-3).all() and (boxes[:, 3] <= shape[1] + 1e-3).all()


def _bare_safetensors(path: Path, model) -> Path:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def _non_finite_weights(path: Path, model) -> Path:
    broken = gfl_small(3, min_size=SIZE, max_size=SIZE)
    broken.load_state_dict(model.state_dict())
    with torch.no_grad():
        broken.head.cls_out.weight[0, 0, 0, 0] = float("nan")
    return save_weights(broken, path)


def _bad_config(path: Path, model) -> Path:
    save_weights(model, path, metadata={"config": '{"num_classes": 3, "reg_maxx": 16}'})
    return path


class Evil:
    """Unpickling this runs code: a weights/checkpoint loader must refuse it (weights_only=True)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickle_with_code(path: Path, model) -> Path:
    with open(path, "wb") as handle:
        pickle.dump({"model": Evil(path.with_suffix(".pwned"))}, handle)
    return path


WEIGHTS_CASES = [
    pytest.param(
        lambda p, m: (p.write_bytes(b""), p)[1], r"w\.safetensors: not a readable safetensors", id="weights-zero-bytes"
    ),
    pytest.param(
        lambda p, m: (p.mkdir(), p)[1], r"w\.safetensors: a folder, not a weights file", id="weights-path-is-a-folder"
    ),
    pytest.param(lambda p, m: p, r"w\.safetensors: weights file not found", id="weights-missing"),
    pytest.param(_bare_safetensors, r"w\.safetensors: no gfocal model config", id="weights-without-config"),
    pytest.param(
        _bad_config,
        r"w\.safetensors: the model config stored in this file is invalid.*reg_maxx",
        id="weights-config-unknown-key",
    ),
    pytest.param(
        _non_finite_weights, r"w\.safetensors: 1 tensors hold NaN.*head\.cls_out\.weight", id="weights-with-nan"
    ),
]


@pytest.mark.parametrize("make, message", WEIGHTS_CASES)
def test_bad_weights_file_is_a_weights_error_naming_it(tmp_path, model, make, message):
    path = make(tmp_path / "w.safetensors", model)
    with pytest.raises(WeightsError, match=message):
        load_model(path)


def test_pickled_code_in_a_weights_file_is_refused_and_not_run(tmp_path, model):
    path = _pickle_with_code(tmp_path / "w.pt", model)
    with pytest.raises(WeightsError, match=r"w\.pt: cannot read it with torch\.load\(weights_only=True\)"):
        gfl_small(3, weights=path)
    assert not path.with_suffix(".pwned").exists()


CHECKPOINT_CASES = [
    pytest.param(
        lambda p, m: _pickle_with_code(p, m),
        r"last\.pt: cannot read it with torch\.load\(weights_only=True\) \(UnpicklingError: Unsupported operand",
        id="checkpoint-pickled-code",
    ),
    pytest.param(
        lambda p, m: save_weights(m, p),
        r"last\.pt: a safetensors weights file, not a torch\.save-d checkpoint file",
        id="checkpoint-is-a-safetensors-file",
    ),
    pytest.param(
        lambda p, m: save_checkpoint(p, {"iteration": 3}),
        r"last\.pt: not a gfocal training checkpoint",
        id="checkpoint-without-model",
    ),
    pytest.param(
        lambda p, m: (p.write_bytes(b""), p)[1],
        r"last\.pt: cannot read it with torch\.load\(weights_only=True\) .*truncated, corrupt",
        id="checkpoint-zero-bytes",
    ),
]


@pytest.mark.parametrize("make, message", CHECKPOINT_CASES)
def test_bad_checkpoint_is_a_weights_error_naming_it(tmp_path, model, make, message):
    path = make(tmp_path / "last.pt", model)
    with pytest.raises(WeightsError, match=message):  # CheckpointError is a WeightsError
        load_checkpoint(path)
    assert not path.with_suffix(".pwned").exists()
