"""Deformable convs (DCN v1, v2) against the published formula and known answers, without mmcv's compiled op."""

import pytest
import torch
from torch import nn

from gfocal.models.deform_conv import DeformConv2d, make_deformable
from support.deform_reference import deform_conv_reference


def _random_layer(modulated: bool, groups: int, stride: int, dilation: int) -> DeformConv2d:
    torch.manual_seed(0)
    layer = DeformConv2d(8, 12, 3, stride, dilation, dilation, groups=groups, modulated=modulated).double()
    with torch.no_grad():  # offsets of a few pixels, some sampling outside the image
        layer.conv_offset.weight.normal_(0, 0.3)
        layer.conv_offset.bias.normal_(0, 1.0)
    return layer


@pytest.mark.parametrize("modulated", [True, False])
@pytest.mark.parametrize(("groups", "stride", "dilation"), [(1, 1, 1), (4, 2, 1), (2, 1, 2)])
def test_the_layer_is_the_published_formula(modulated, groups, stride, dilation):
    layer = _random_layer(modulated, groups, stride, dilation)
    x = torch.randn(2, 8, 9, 11, dtype=torch.float64)
    offset, mask = layer.offsets_and_mask(x)
    assert offset.abs().max() > 1.5 and (mask is not None) == modulated
    expected = deform_conv_reference(x, offset, layer.weight, stride, dilation, dilation, mask)
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=0)
    # float32, as the detector runs it
    torch.testing.assert_close(layer.float()(x.float()), expected.float(), atol=1e-5, rtol=1e-5)


def test_offsets_and_mask_are_mmcv_s_chunks_of_the_offset_conv():
    layer = _random_layer(True, 1, 1, 1)
    x = torch.randn(1, 8, 5, 6, dtype=torch.float64)
    raw = layer.conv_offset(x)  # [N, 27, h, w]: mmcv's o1, o2, mask = chunk(3)
    offset, mask = layer.offsets_and_mask(x)
    torch.testing.assert_close(offset, torch.cat((raw[:, :9], raw[:, 9:18]), 1))
    torch.testing.assert_close(mask, raw[:, 18:].sigmoid())


@pytest.mark.parametrize("modulated", [True, False])
def test_a_one_pixel_offset_along_x_is_the_plain_conv_of_the_shifted_image(modulated):
    """(dy, dx) interleaved per kernel point: odd offset channels move samples along x."""
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False).double()
    layer = make_deformable(conv, modulated).double()
    with torch.no_grad():
        layer.conv_offset.bias[1:18:2] = 1.0  # dx = +1 at all 9 points
        if modulated:
            layer.conv_offset.bias[18:] = 50.0  # mask sigmoid(50) = 1
    x = torch.randn(1, 4, 7, 8, dtype=torch.float64)
    shifted = torch.nn.functional.pad(x[..., 1:], (0, 1))  # x[..., j + 1], zero beyond the right edge
    # Column 0 differs only at the border: the deformable conv samples x[..., 0] where the shifted image's
    # padding holds zero.
    torch.testing.assert_close(layer(x)[..., 1:], conv(shifted)[..., 1:], atol=1e-10, rtol=0)


def test_zero_offsets_give_the_plain_conv_v1_and_half_of_it_v2():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4, bias=True)
    x = torch.randn(2, 8, 10, 9)
    torch.testing.assert_close(make_deformable(conv, modulated=False)(x), conv(x), atol=1e-5, rtol=0)
    # a freshly built v2 layer: zero-initialised offset conv, mask sigmoid(0) = 0.5 on every product
    half = 0.5 * (conv(x) - conv.bias.view(1, -1, 1, 1)) + conv.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(make_deformable(conv, modulated=True)(x), half, atol=1e-5, rtol=0)


def test_tensor_names_are_mmcv_s_and_the_offsets_learn():
    layer = DeformConv2d(8, 8, 3, groups=2, modulated=True)
    assert {k: tuple(v.shape) for k, v in layer.state_dict().items()} == {
        "weight": (8, 4, 3, 3),
        "conv_offset.weight": (27, 8, 3, 3),
        "conv_offset.bias": (27,),
    }
    assert DeformConv2d(8, 8, 3, modulated=False).conv_offset.out_channels == 18
    layer(torch.randn(1, 8, 6, 6)).square().sum().backward()
    assert layer.conv_offset.weight.grad.abs().sum() > 0


def test_bad_groups_are_named():
    with pytest.raises(ValueError, match="groups=3"):
        DeformConv2d(8, 8, groups=3)
