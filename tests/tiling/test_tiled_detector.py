"""TiledDetector: tiles go through the detector in batches, detections come back in image pixels, merged."""

import pytest
import torch
from torch import nn

from gfocal.models import gfl_small
from gfocal.tiling import TiledDetector, TilingConfig

HEIGHT, WIDTH = 300, 500
OBJECTS = torch.tensor([[60.0, 40, 90, 70], [180, 100, 230, 140], [230, 100, 270, 140], [400, 250, 450, 290]])


def coordinate_image():
    """Channel 0 holds x / WIDTH, channel 1 y / HEIGHT: a tile knows where it lies in the image."""
    ys, xs = torch.meshgrid(torch.arange(HEIGHT), torch.arange(WIDTH), indexing="ij")
    return torch.stack((xs / WIDTH, ys / HEIGHT, torch.zeros(HEIGHT, WIDTH))).double()


class Oracle(nn.Module):
    """Finds the known objects, clipped to each tile, in tile pixels; records the tile shapes it is given."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, images, return_distributions=False):
        self.shapes.append([tuple(image.shape) for image in images])
        outputs = []
        for tile in images:
            x0, y0 = round(tile[0, 0, 0].item() * WIDTH), round(tile[1, 0, 0].item() * HEIGHT)
            h, w = tile.shape[-2:]
            boxes = OBJECTS - torch.tensor([x0, y0, x0, y0])
            boxes = torch.stack(
                (boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h), boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)), -1
            )
            seen = ((boxes[:, 2:] - boxes[:, :2]) > 0).all(-1)
            outputs.append(
                {
                    "boxes": boxes[seen].float(),
                    "scores": torch.linspace(0.9, 0.5, len(OBJECTS))[seen],
                    "labels": torch.zeros(int(seen.sum()), dtype=torch.int64),
                    "edge_std": torch.ones(int(seen.sum()), 4),
                }
            )
        return outputs


def run(merge, tile=200, overlap=0.25, batch_size=3):
    oracle = Oracle().eval()
    tiled = TiledDetector(oracle, TilingConfig(tile, overlap, merge, batch_size)).eval()
    return tiled([coordinate_image()])[0], oracle


def by_x(boxes):
    return boxes[boxes[:, 0].argsort()]


def test_distribution_aware_merge_recovers_every_object_whole():
    detections, oracle = run("dist")
    assert torch.allclose(by_x(detections["boxes"]), OBJECTS)
    assert "edge_std" not in detections  # distributions only when asked for


def test_tiles_are_batched_and_never_the_whole_image():
    _, oracle = run("dist", batch_size=3)
    sizes = [len(batch) for batch in oracle.shapes]
    assert sizes[:-1] == [3] * (len(sizes) - 1) and sum(sizes) == 6  # 2 rows x 3 columns of 200 px
    assert {shape for batch in oracle.shapes for shape in batch} == {(3, 200, 200)}


def test_nms_keeps_the_cut_views():
    detections, _ = run("nms")
    assert len(detections["boxes"]) > len(OBJECTS)  # a truncated view of an object is a second box


def test_one_tile_for_a_small_image_maps_back_exactly():
    detections, oracle = run("nms", tile=600)
    assert len(oracle.shapes) == 1
    assert torch.allclose(by_x(detections["boxes"]), OBJECTS)


def test_progress_counts_tiles():
    seen = []
    TiledDetector(Oracle().eval(), TilingConfig(200, 0.25), progress=seen.append).eval()([coordinate_image()])
    assert sum(seen) == 6


@pytest.mark.parametrize(
    "field,value", [("tile", 8), ("overlap", 1.0), ("merge", "wbf"), ("batch_size", 0), ("max_detections", 0)]
)
def test_bad_config_is_an_error(field, value):
    options = {"tile": 256, field: value}
    with pytest.raises(ValueError, match=field.split("_")[0]):
        TilingConfig(**options)


@pytest.mark.slow
def test_real_detector_on_a_larger_image_batched_equals_one_by_one():
    torch.manual_seed(0)
    model = gfl_small(num_classes=2, score_threshold=0.0).eval()
    image = torch.rand(3, 700, 900)
    with torch.inference_mode():
        batched = TiledDetector(model, TilingConfig(320, 0.2, "dist", batch_size=4)).eval()([image], True)[0]
        single = TiledDetector(model, TilingConfig(320, 0.2, "dist", batch_size=1)).eval()([image], True)[0]
    assert len(batched["boxes"]) > 0
    assert set(batched) == {"boxes", "scores", "labels", "box_distributions", "edge_std", "bin_size"}
    for key in batched:
        assert torch.allclose(batched[key], single[key], atol=1e-4), key
    assert (batched["boxes"][:, 2] <= 900).all() and (batched["boxes"][:, 3] <= 700).all()
