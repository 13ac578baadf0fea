"""Writing a gfocal detector as an mmdetection GFL checkpoint: the names of the independent inverse, the
round trip through the importer, the class names in meta, and the detectors mmdetection's GFL cannot hold."""

import pytest
import torch
from test_mmdet_mapping import fake_mmdet_state, source_model

from gfocal.engine.pretrained import read_pretrained
from gfocal.interop import from_mmdet, save_mmdet_checkpoint, to_mmdet_state
from gfocal.interop.mmdet import gfocal_key_to_mmdet, mmdet_key_to_gfocal
from gfocal.models import WeightsError, gfl_small


def test_the_state_is_what_the_independent_inverse_writes():
    model = source_model()
    expected, state = fake_mmdet_state(model), to_mmdet_state(model)
    assert sorted(state) == sorted(expected)
    for key, value in expected.items():
        torch.testing.assert_close(state[key], value, msg=key)
    assert all(gfocal_key_to_mmdet(mmdet_key_to_gfocal(key)) == key for key in expected if "integral" not in key)


def test_a_written_checkpoint_imports_as_the_same_detector_with_its_class_names(tmp_path):
    model = source_model(class_names=("car", "bike", "person", "dog"))
    path = save_mmdet_checkpoint(model, tmp_path / "gfl.pth")
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["meta"] == {"dataset_meta": {"classes": ("car", "bike", "person", "dog")}}
    imported = from_mmdet(path)
    batch = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected, actual = model.scored_outputs(batch), imported.scored_outputs(batch)
    torch.testing.assert_close(actual.scores, expected.scores)
    torch.testing.assert_close(actual.box_outputs, expected.box_outputs)
    assert read_pretrained(path).class_names == ("car", "bike", "person", "dog")
    with torch.no_grad():
        model.head.cls_out.bias.add_(1.0)  # the file holds copies, not the model's live tensors
    torch.testing.assert_close(imported.head.cls_out.bias, model.head.cls_out.bias - 1.0)


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"dgqp": True}, ["dgqp=True", "head.dgqp.0.weight"]),
        ({"relu_before_extra_convs": True}, ["relu_before_extra_convs=True (mmdetection's: False)"]),
        ({"backbone_width": 32}, ["backbone_width=32"]),
    ],
)
def test_a_detector_mmdetection_cannot_hold_is_refused_by_name(changes, named):
    model = gfl_small(2, min_size=64, max_size=64, **changes)
    with pytest.raises(WeightsError, match="no mmdetection GFL twin") as error:
        to_mmdet_state(model)
    assert all(name in str(error.value) for name in named)
