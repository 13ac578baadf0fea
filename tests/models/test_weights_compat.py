"""Weights files written before variants became components still load and predict the same.

The file is written as gfocal's save path wrote it then (``gfocal-weights-1``: the state dict and the
ModelConfig's JSON without the fields added since, e.g. ``assigner``, and with those retired since,
``extra``), and the quality branches' tensor names are pinned to the names those files hold.
"""

import json

import pytest
import torch
from safetensors.torch import save_file

from gfocal.models import gfl_small, load_model
from gfocal.models.variants import VARIANTS

#: Every variant that existed then (the anchor-delta box and the other detectors' assigners came later), and its
#: quality branch's tensors.
LEGACY_VARIANTS = [
    key
    for key, variant in VARIANTS.items()
    if variant.overrides.get("box") != "anchor_delta" and "assigner" not in variant.overrides
]
CENTERNESS_KEYS = {"head.centerness_out.weight", "head.centerness_out.bias"}
DGQP_KEYS = {"head.dgqp.0.weight", "head.dgqp.0.bias", "head.dgqp.2.weight", "head.dgqp.2.bias"}
#: The head's tensors every variant has, besides its quality branch's.
SHARED_HEAD = {"head.cls_out.weight", "head.cls_out.bias", "head.box_out.weight", "head.box_out.bias"}
#: ModelConfig fields that files written before components lack.
NEW_FIELDS = ("assigner",)


def write_legacy_file(model, path):
    config = {**{k: v for k, v in model.config.to_dict().items() if k not in NEW_FIELDS}, "extra": {}}
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "gfocal-weights-1", "config": json.dumps(config)})


@pytest.mark.parametrize("variant", LEGACY_VARIANTS)
def test_a_file_from_before_components_loads_and_predicts_identically(variant, tmp_path):
    overrides = VARIANTS[variant].overrides
    branch_keys = CENTERNESS_KEYS if overrides.get("classification") == "focal" else set()
    branch_keys |= DGQP_KEYS if overrides.get("dgqp") else set()
    torch.manual_seed(0)
    model = gfl_small(2, backbone_width=8, fpn_channels=32, feat_channels=32, stacked_convs=1, min_size=64,
                      max_size=64, score_threshold=0.0, **overrides).eval()  # fmt: skip
    head_keys = {k for k in model.state_dict() if k.startswith("head.") and not k.startswith(("head.cls_tower", "head.reg_tower", "head.scales"))}  # fmt: skip
    assert head_keys == SHARED_HEAD | branch_keys
    with torch.no_grad():  # trained-looking quality layers, so that a branch left as initialised would show
        for name, parameter in model.named_parameters():
            if name in branch_keys:
                parameter.add_(torch.randn_like(parameter))
    write_legacy_file(model, tmp_path / "old.safetensors")

    loaded = load_model(tmp_path / "old.safetensors").eval()
    assert loaded.config == model.config
    images = [torch.rand(3, 64, 48), torch.rand(3, 40, 64)]
    with torch.no_grad():
        expected, actual = model(images), loaded(images)
    for want, got in zip(expected, actual):
        assert len(want["boxes"]) > 0
        for key in ("boxes", "scores", "labels"):
            torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)
