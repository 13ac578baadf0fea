"""Active learning: the image scores on hand-built detections, the greedy choice, and ``gfocal select`` end to end."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from gfocal.analysis.selection import (
    ImageScore,
    _mean_rank,
    choose,
    classification_uncertainty,
    localisation_uncertainty,
    relative_spread,
    score_images,
)
from gfocal.cli.main import main
from gfocal.data.yolo import _list_images
from gfocal.models import gfl_small, load_model, save_weights

SIZE = 64


def test_relative_spread_known_values():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 5.0, 5.5]])
    std = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
    spread = relative_spread(boxes, std)
    assert spread[0] == pytest.approx((0.1 + 0.1 + 0.3 + 0.2) / 4)
    assert spread[1] == pytest.approx(1.0)  # a degenerate box counts as 1 px wide and high


def test_image_uncertainties_known_values():
    assert localisation_uncertainty(torch.tensor([1.0, 0.0]), torch.tensor([0.1, 0.9])) == pytest.approx(0.1)
    assert localisation_uncertainty(torch.tensor([0.5, 0.5]), torch.tensor([0.1, 0.3])) == pytest.approx(0.2)
    assert localisation_uncertainty(torch.zeros(0), torch.zeros(0)) == 0.0
    assert classification_uncertainty(torch.tensor([0.9, 0.5])) == pytest.approx(1.0)
    assert classification_uncertainty(torch.tensor([1.0, 0.0])) == pytest.approx(0.0)
    assert classification_uncertainty(torch.tensor([0.2])) == pytest.approx(0.4)
    assert classification_uncertainty(torch.zeros(0)) == 0.0


def test_mean_rank_combines_columns_by_rank():
    values = np.array([[0.1, 10.0], [0.2, 30.0], [0.3, 20.0]])
    # Ranks (0, 1, 2) and (0, 2, 1): means 0, 1.5, 1.5 over a largest rank of 2.
    np.testing.assert_allclose(_mean_rank(values), [0.0, 0.75, 0.75])
    np.testing.assert_allclose(_mean_rank(np.array([[1.0, 1.0], [1.0, 1.0]])), [0.5, 0.5])  # ties


def pool(uncertainties, embeddings):
    empty = np.zeros((0, 4), np.float32)
    return [
        ImageScore(
            f"{i}.png", 8, 8, 0.0, 0.0, u, np.asarray(e, np.float32) / np.linalg.norm(e), empty, empty[:, 0], empty
        )
        for i, (u, e) in enumerate(zip(uncertainties, embeddings))
    ]


def test_choose_takes_the_most_uncertain_and_diversity_spreads_the_picks():
    # Images 0 and 1 are near duplicates and the two most uncertain; image 3 looks unlike them.
    scores = pool([0.9, 0.85, 0.2, 0.5], [[1, 0], [1, 0.01], [0.9, 0.1], [0, 1]])
    assert choose(scores, 2) == [0, 1]
    assert choose(scores, 2, diversity=0.5) == [0, 3]
    assert choose(scores, 10) == [0, 1, 3, 2]  # a budget over the pool takes it all
    with pytest.raises(ValueError, match="budget"):
        choose(scores, 0)
    with pytest.raises(ValueError, match="diversity"):
        choose(scores, 1, diversity=1.5)


@pytest.fixture(scope="module")
def eager_weights(tmp_path_factory):
    """An untrained gfl_small that keeps its candidates (score threshold 0), so every image has boxes."""
    torch.manual_seed(0)
    model = gfl_small(4, min_size=SIZE, max_size=SIZE, score_threshold=0.0, max_detections=20)
    return save_weights(model, tmp_path_factory.mktemp("eager") / "eager.safetensors")


@pytest.fixture
def unlabelled(tiny_coco, tmp_path):
    """The tiny set's images alone, a non-image file among them."""
    folder = tmp_path / "pool"
    shutil.copytree(tiny_coco.parent / "train", folder)
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


def test_one_forward_pass_per_batch(unlabelled, eager_weights):
    model = load_model(eager_weights)
    calls = []
    hook = model.backbone.register_forward_hook(lambda *_: calls.append(1))
    paths = sorted(p for p in unlabelled.iterdir() if p.name != "broken.png")
    scores = score_images(model, paths, batch_size=3, progress=False)
    hook.remove()
    assert len(calls) == 2 and len(scores) == len(paths) == 4
    combined = _mean_rank(np.array([[s.localisation, s.classification] for s in scores]))
    assert [s.uncertainty for s in scores] == pytest.approx(combined.tolist())
    assert np.mean(combined) == pytest.approx(0.5)  # percentile ranks over the pool
    assert all(np.linalg.norm(s.embedding) == pytest.approx(1.0, abs=1e-5) for s in scores)


def test_select_command_writes_the_chosen_list(unlabelled, eager_weights, tmp_path, capsys):
    out = tmp_path / "chosen"
    args = ["-q", "select", "--weights", str(eager_weights), "--images", str(unlabelled), "--out", str(out)]
    with pytest.warns(UserWarning, match="broken.png"):
        assert main([*args, "--budget", "2", "--diversity", "0.3", "--min-score", "0.0"]) == 0
    with open(out / "selected.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["rank"]) for r in rows] == [1, 2]
    report = json.loads((out / "selected.json").read_text())
    assert [r["path"] for r in report["selected"]] == [r["path"] for r in rows]
    assert len(report["pool"]) == 4 and report["settings"]["diversity"] == 0.3
    # The list is a YOLO split the readers take as it is.
    assert [str(p) for p in _list_images(out / "selected.txt")] == [r["path"] for r in rows]
    assert all((unlabelled / r["file_name"]).is_file() for r in rows)
    assert (out / "contact_sheet.png").read_bytes()[:4] == b"\x89PNG"
    assert "chose 2 of 5 images" in capsys.readouterr().out
    assert main([*args, "--budget", "2", "--overwrite", "--diversity", "2"]) == 2
