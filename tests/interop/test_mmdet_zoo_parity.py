"""The paper's zoo (every GFL config of mmdetection 3.3's configs/gfl, and the LD students of configs/ld): our
detections equal mmdetection's for its checkpoints.

mmdetection's model is built from its own config file, with random weights, and imported through a saved
``.pth``. ``mmcv-lite`` cannot build the ``dconv`` configs (their ``type='DCN'`` is a compiled mmcv op, absent
from its registry); ``mmcv_ops_standin`` registers mmcv's deformable conv modules, their tensors and forward
as mmcv's, their sampling from the published formula, so mmdetection's own ResNet/ResNeXt code places them.
The full-size bodies are built (unavoidably: the layout is the point); the head is narrow, the image small.
"""

import pytest
import torch
from mmdet_reference import assert_same_detections, build_mmdet_zoo_gfl

from gfocal.interop import from_mmdet, to_mmdet_state
from gfocal.models.deform_conv import DeformConv2d

pytestmark = pytest.mark.mmdet


@pytest.mark.parametrize(
    ("config_name", "backbone", "expected"),
    [
        ("gfl_r50_fpn_1x_coco", {}, ("resnet50", (), False)),
        ("gfl_r50_fpn_ms-2x_coco", {}, ("resnet50", (), False)),
        ("gfl_r101_fpn_ms-2x_coco", {}, ("resnet101", (), False)),
        ("gfl_r101-dconv-c3-c5_fpn_ms-2x_coco", {}, ("resnet101", (2, 3, 4), False)),
        ("gfl_x101-32x4d_fpn_ms-2x_coco", {}, ("resnext101_32x4d", (), False)),
        ("gfl_x101-32x4d-dconv-c4-c5_fpn_ms-2x_coco", {}, ("resnext101_32x4d", (3, 4), False)),
        # DCN v2 (ModulatedDeformConv2dPack), in the R-101 config's stages
        (
            "gfl_r101-dconv-c3-c5_fpn_ms-2x_coco",
            {"dcn": {"type": "DCNv2", "deform_groups": 1, "fallback_on_stride": False}},
            ("resnet101", (2, 3, 4), True),
        ),
    ],
)
def test_zoo_detections_equal_mmdetection(config_name, backbone, expected, tmp_path):
    reference = build_mmdet_zoo_gfl(config_name, 3, 64, 1, random_weights=True, **backbone)
    path = tmp_path / f"{config_name}.pth"
    torch.save({"meta": {"dataset_meta": {"classes": ("a", "b", "c")}}, "state_dict": reference.state_dict()}, path)
    ours = from_mmdet(path)
    path.unlink()
    assert (ours.config.backbone, ours.config.deform_stages, ours.config.deform_modulated) == expected
    deformable = [name for name, m in ours.backbone.body.named_modules() if isinstance(m, DeformConv2d)]
    assert len(deformable) == {(): 0, (3, 4): 26, (2, 3, 4): 30}[expected[1]]
    torch.manual_seed(1)
    batch = torch.randn(1, 3, 96, 128)  # a normalised, padded input
    assert assert_same_detections(reference, ours, batch, image_size=(90, 120)) > 10
    reference.load_state_dict(to_mmdet_state(ours), strict=True)  # and back: every tensor has its mmdet name


@pytest.mark.parametrize(
    ("config_name", "body"),
    [
        ("ld_r18-gflv1-r101_fpn_1x_coco", "resnet18"),
        ("ld_r34-gflv1-r101_fpn_1x_coco", "resnet34"),
        ("ld_r50-gflv1-r101_fpn_1x_coco", "resnet50"),
        ("ld_r101-gflv1-r101-dcn_fpn_2x_coco", "resnet101"),
    ],
)
def test_an_ld_student_of_the_zoo_imports_with_mmdetection_s_detections(config_name, body, tmp_path):
    """mmdetection's LD students (configs/ld) are GFL detectors with an ``LDHead``, whose tensors are
    ``GFLHead``'s; their checkpoints hold the student alone, and import as GFL."""
    reference = build_mmdet_zoo_gfl(config_name, 3, 64, 1, random_weights=True)
    assert type(reference).__name__ == "KnowledgeDistillationSingleStageDetector"
    assert not any(name.startswith("teacher") for name in reference.state_dict())
    path = tmp_path / f"{config_name}.pth"
    torch.save({"meta": {"dataset_meta": {"classes": ("a", "b", "c")}}, "state_dict": reference.state_dict()}, path)
    ours = from_mmdet(path)
    assert (ours.config.backbone, ours.config.deform_stages) == (body, ())
    torch.manual_seed(1)
    batch = torch.randn(1, 3, 96, 128)
    assert assert_same_detections(reference, ours, batch, image_size=(90, 120)) > 10
