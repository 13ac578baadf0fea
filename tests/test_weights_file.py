"""One reader for every weights file: its kind told by content, and one error, one line naming the file."""

import pytest
import torch
from safetensors.torch import save_file

from gfocal.engine.checkpoint import load_checkpoint
from gfocal.engine.pretrained import read_pretrained
from gfocal.interop import from_mmdet
from gfocal.models import gfl_nano, save_weights
from gfocal.models.factory import build_detector
from gfocal.weights_file import WeightsError, read_weights_file

TENSORS = {"conv.weight": torch.ones(2, 3), "conv.bias": torch.zeros(2)}


class Hub:
    """Stands for the objects an mmdetection 3.x checkpoint pickles besides tensors (mmengine's message hub)."""


def test_each_kind_is_told_by_its_content_not_its_name(tmp_path):
    model = gfl_nano(1, min_size=64, max_size=64)
    files = {
        "gfocal weights": save_weights(model, tmp_path / "a.bin"),  # a safetensors file by its header
        "safetensors": tmp_path / "b.safetensors",
        "gfocal training checkpoint": tmp_path / "last.pt",
        "mmdetection checkpoint": tmp_path / "gfl.pth",
        "state dict": tmp_path / "resnet.pth",
    }
    save_file(TENSORS, files["safetensors"])
    torch.save(
        {"model": TENSORS, "model_config": model.config.to_dict(), "iteration": 3}, files["gfocal training checkpoint"]
    )
    torch.save({"state_dict": {"bbox_head.gfl_cls.bias": torch.zeros(1)}, "meta": {}}, files["mmdetection checkpoint"])
    torch.save(TENSORS, files["state dict"])
    for kind, path in files.items():
        file = read_weights_file(path)
        assert file.kind == kind and file.tensors, kind
    assert read_weights_file(files["gfocal training checkpoint"]).content["iteration"] == 3
    assert read_weights_file(files["gfocal weights"], with_tensors=False).tensors == {}


def test_a_file_pickling_a_class_fails_in_one_line_naming_the_file_and_the_class_everywhere(tmp_path):
    path = tmp_path / "gfl_x101.pth"
    torch.save({"state_dict": {"bbox_head.gfl_cls.bias": torch.zeros(1)}, "message_hub": Hub()}, path)
    readers = [
        read_weights_file,
        read_pretrained,
        load_checkpoint,
        from_mmdet,
        lambda p: build_detector(gfl_nano(1).config, weights=p),
    ]
    for read in readers:
        with pytest.raises(WeightsError) as error:
            read(path)
        message = str(error.value)
        assert message.startswith(f"{path}: cannot read it with torch.load(weights_only=True), which refuses")
        assert f"{__name__}.Hub" in message and "\n" not in message


def test_missing_folder_and_empty_files_are_one_line_each(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    torch.save({}, tmp_path / "nothing.pth")
    cases = {
        tmp_path / "missing.pth": "weights file not found",
        tmp_path: "a folder, not a weights file",
        tmp_path / "empty.pth": "cannot read it with torch.load(weights_only=True) (",
        tmp_path / "nothing.pth": "expected a state dict of tensors, found an empty dict",
    }
    for path, problem in cases.items():
        with pytest.raises(WeightsError) as error:
            read_weights_file(path)
        assert str(error.value).startswith(f"{path}: {problem}") and "\n" not in str(error.value)
