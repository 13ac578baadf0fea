"""Deformable convs in ONNX: ONNX's DeformConv (opset 19) computes gfocal's layer; a deformable model exports
at opset 19 by default and refuses an older opset in one line, at the API and the CLI.

The whole deformable detector's export is not run here (minutes on 2 cores); the layer is what differs.
"""

import pytest
import torch
from torch import nn

from gfocal.cli.main import main
from gfocal.export.onnx import DEFORM_CONV_OPSET, export_onnx, resolve_opset
from gfocal.models import MODELS, gfl_nano, save_weights
from gfocal.models.deform_conv import DeformConv2d

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

TINY = {"backbone_width": 16, "fpn_channels": 32, "feat_channels": 32, "norm_groups": 16, "stacked_convs": 1}


class Deformable(nn.Module):
    """A plain conv feeding a DCN v1 and a DCN v2 layer (the zoo's, and the one with a mask) whose offsets (and
    mask) are far from zero."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.v1 = DeformConv2d(8, 8, stride=2, modulated=False)
        self.v2 = DeformConv2d(8, 8, modulated=True)
        with torch.no_grad():
            for layer in (self.v1, self.v2):
                layer.conv_offset.weight.normal_(0, 0.3)  # offsets of a pixel or so: bilinear sampling matters

    def forward(self, x):
        return self.v2(self.v1(self.conv(x)))


@pytest.mark.slow
def test_dcn_v1_and_v2_export_as_deform_conv_and_onnxruntime_computes_the_same(tmp_path):
    torch.manual_seed(0)
    module = Deformable().eval()
    x = torch.rand(1, 3, 20, 24)
    path = tmp_path / "deform.onnx"
    with torch.no_grad():
        expected = module(x)
        assert (module.v1.conv_offset(module.conv(x)).abs() > 0.5).any()  # the offsets do move the samples
        program = torch.onnx.export(module, (x,), input_names=["x"], opset_version=DEFORM_CONV_OPSET, dynamo=True)
    onnx.save(program.model_proto, str(path))
    assert [node.op_type for node in program.model_proto.graph.node].count("DeformConv") == 2
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)


def test_a_deformable_model_exports_at_opset_19_by_default_and_refuses_an_older_one(tmp_path):
    deformable = MODELS["gfl_resnet101_dcn_fpn"](num_classes=1, **TINY)
    assert resolve_opset(deformable) == DEFORM_CONV_OPSET and resolve_opset(gfl_nano(1)) == 18
    assert resolve_opset(deformable, 20) == 20
    with pytest.raises(ValueError, match=r"opset 18 has no deformable convolution; .*stages \(2, 3, 4\).*opset 19"):
        export_onnx(deformable, tmp_path / "m.onnx", opset=18)
    assert not (tmp_path / "m.onnx").exists()


def test_the_cli_refuses_an_opset_without_deform_conv_in_one_line(tmp_path, capsys):
    model = MODELS["gfl_resnext101_32x4d_dcn_fpn"](num_classes=1, min_size=64, max_size=64, **TINY)
    weights = save_weights(model, tmp_path / "x101_dcn.safetensors")
    assert main(["export", "onnx", str(weights), str(tmp_path / "m.onnx"), "--opset", "18"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gfocal export: error: opset 18 has no deformable convolution") and err.count("\n") == 1
