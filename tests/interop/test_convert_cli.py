"""``gfocal convert mmdet``: a checkpoint file in, a gfocal weights file that rebuilds the model out."""

import torch
from test_mmdet_mapping import fake_mmdet_state, source_model

from gfocal.cli.main import main
from gfocal.models import load_model


def test_convert_mmdet_checkpoint_to_safetensors(tmp_path, capsys):
    model = source_model()
    checkpoint = tmp_path / "gfl.pth"
    torch.save({"state_dict": fake_mmdet_state(model)}, checkpoint)
    out = tmp_path / "gfl.safetensors"
    assert main(["convert", "mmdet", str(checkpoint), str(out), "--class-names", "a,b,c,d"]) == 0
    assert "resnet18" in capsys.readouterr().out
    loaded = load_model(out).eval()
    assert loaded.class_names == ("a", "b", "c", "d") and loaded.config.relu_before_extra_convs is False
    batch = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.scored_outputs(batch).scores, model.scored_outputs(batch).scores)
