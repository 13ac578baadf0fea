"""The detector's contract, variants, edge cases, determinism and weights round trip."""

import pytest
import torch
from torch import nn
from torchvision.ops import box_iou

from gfocal.models import WeightsError, gfl_small, load_model, save_weights
from gfocal.models.head import HeadOutputs
from gfocal.models.quality import joint_score_logits
from gfocal.models.variants import VARIANTS

SIZE = 96


def tiny_model(num_classes=3, **overrides):
    torch.manual_seed(0)
    return gfl_small(num_classes, **{"min_size": SIZE, "max_size": SIZE, **overrides})


def detecting(model):
    """The model with class logits around 0 (scores ~0.5): untrained, it would score ~0.01 (the prior),
    below the 0.05 threshold, and detect nothing for the checks to check."""
    with torch.no_grad():
        model.head.cls_out.bias.zero_()
    return model


def target(boxes, labels):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def sample_batch():
    images = [torch.rand(3, SIZE, SIZE), torch.randint(0, 256, (3, 64, SIZE), dtype=torch.uint8)]
    targets = [target([[10, 12, 50, 60], [60, 20, 90, 80]], [0, 2]), target([[5, 5, 40, 30]], [1])]
    return images, targets


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_trains_and_predicts(name):
    model = tiny_model(**VARIANTS[name].overrides)
    images, targets = sample_batch()
    losses = model(images, targets)
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())
    detecting(model).eval()
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == 2
    for detection, image in zip(detections, images):
        assert len(detection["boxes"]) > 0
        assert set(detection) == {"boxes", "scores", "labels"}
        assert detection["boxes"].dtype == torch.float32 and detection["labels"].dtype == torch.int64
        assert (detection["boxes"][:, 2] <= image.shape[2] + 1e-4).all()


def test_loss_names_follow_the_variant():
    images, targets = sample_batch()
    assert set(tiny_model()(images, targets)) == {"loss_qfl", "loss_bbox", "loss_dfl"}
    for box in ("dirac", "anchor_delta"):
        assert set(tiny_model(classification="focal", box=box)(images, targets)) == {
            "loss_focal",
            "loss_centerness",
            "loss_bbox",
        }


def test_images_without_boxes_give_finite_losses_with_zero_but_differentiable_box_terms():
    model = tiny_model()
    empty = target([], [])
    losses = model([torch.rand(3, SIZE, SIZE)] * 2, [empty, empty])
    assert losses["loss_bbox"].item() == 0 and losses["loss_dfl"].item() == 0 and losses["loss_qfl"] > 0
    sum(losses.values()).backward()
    assert torch.isfinite(model.head.cls_out.weight.grad).all()


def test_a_thousand_boxes_in_one_image_train():
    model = tiny_model()
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(1000, 2, generator=generator) * 80
    boxes = torch.cat((corners, corners + 4 + torch.rand(1000, 2, generator=generator) * 12), 1)
    losses = model([torch.rand(3, SIZE, SIZE)], [{"boxes": boxes, "labels": torch.zeros(1000, dtype=torch.long)}])
    assert all(torch.isfinite(v) for v in losses.values())


def test_uint8_and_float_inputs_agree_and_detections_map_back_to_the_original_size():
    model = tiny_model().eval()
    image = torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8)  # resized x1.5 inside the model
    with torch.no_grad():
        from_uint8 = model.scored_outputs(model.transform([image])[0].tensors).scores
        from_float = model.scored_outputs(model.transform([image.float() / 255])[0].tensors).scores
    # uint8 is resized as uint8 (as the data pipeline does): the inputs differ by rounding only.
    torch.testing.assert_close(from_uint8, from_float, atol=2e-3, rtol=0)
    batch, _ = model.transform([image])
    assert batch.image_sizes == [(72, 96)] and batch.scales == [(1.5, 1.5)] and batch.original_sizes == [(48, 64)]
    detections = model.transform.postprocess(
        [{"boxes": torch.tensor([[15.0, 30.0, 60.0, 72.0], [-3.0, 6.0, 99.0, 80.0]])}], batch
    )
    # Mapped back to original pixels and clipped to the original image.
    torch.testing.assert_close(detections[0]["boxes"], torch.tensor([[10.0, 20.0, 40.0, 48.0], [0.0, 4.0, 64.0, 48.0]]))


def test_batched_inference_equals_one_by_one():
    images = [torch.rand(3, SIZE, SIZE) for _ in range(3)]
    model = tiny_model(score_threshold=0.0).eval()
    with torch.no_grad():
        batched = model(images)
        single = [model([image])[0] for image in images]
    for a, b in zip(batched, single):
        assert len(a["boxes"]) > 0
        torch.testing.assert_close(a["boxes"], b["boxes"])
        torch.testing.assert_close(a["scores"], b["scores"])


class LocationWiseHead(nn.Module):
    """A stand-in head whose outputs depend only on each location's level and cell, not on the
    features (conv outputs near the padding depend on it): a batch and its images alone see the same."""

    def __init__(self, num_classes, bins):
        super().__init__()
        self.num_classes, self.bins = num_classes, bins

    def forward(self, features):
        codes = []
        for level, feature in enumerate(features):
            rows, cols = torch.meshgrid(torch.arange(feature.shape[2]), torch.arange(feature.shape[3]), indexing="ij")
            codes.append((0.37 * rows + 0.71 * cols + 1.3 * level).reshape(1, -1, 1).expand(len(feature), -1, -1))
        code = torch.cat(codes, dim=1)  # [N, A, 1]
        cls_logits = torch.zeros(*code.shape[:2], self.num_classes)  # score 0.5: each positive's box weight is 0.5
        return HeadOutputs(cls_logits, torch.sin(code * torch.arange(1, 4 * self.bins + 1)), None)


def test_training_on_a_padded_batch_equals_training_image_by_image():
    # Shorter side 96, longer at most 160: the transform keeps these sizes and pads the batch to 160 x 160.
    model = tiny_model(max_size=160)
    model.head = LocationWiseHead(3, model.config.bins)
    images = [torch.rand(3, 150, 96), torch.rand(3, 96, 150), torch.rand(3, 96, 128)]
    targets = [
        target([[50, 90, 95, 148], [5, 5, 40, 60]], [0, 1]),
        target([[90, 40, 149, 95]], [2]),
        target([[10, 50, 120, 95]], [1]),
    ]

    def loss_sums(images, targets):
        """The losses times their normalisers: num_pos for QFL, the sum of the box weights (0.5 each) else."""
        losses = model(images, targets)
        num_pos = round(model.last_stats["num_pos"] * len(images))
        assert num_pos > 0
        box_weight = max(num_pos / 2, 1.0)
        return {
            "loss_qfl": losses["loss_qfl"] * num_pos,
            "loss_bbox": losses["loss_bbox"] * box_weight,
            "loss_dfl": losses["loss_dfl"] * box_weight,
        }

    batched = loss_sums(images, targets)
    alone = [loss_sums([image], [t]) for image, t in zip(images, targets)]
    for name, value in batched.items():
        torch.testing.assert_close(value, sum(a[name] for a in alone), rtol=1e-5, atol=0.0, msg=name)


def test_inputs_are_not_mutated():
    model = tiny_model()
    images, targets = sample_batch()
    copies = [i.clone() for i in images], [{k: v.clone() for k, v in t.items()} for t in targets]
    model(images, targets)
    model.eval()
    model(images)
    assert all(torch.equal(a, b) for a, b in zip(images, copies[0]))
    assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(targets, copies[1]))


def test_seeded_training_is_deterministic():
    def one_step():
        model = tiny_model()
        images, targets = sample_batch()
        torch.manual_seed(1)
        sum(model(images, targets).values()).backward()
        return model.head.cls_out.weight.grad.clone()

    assert torch.equal(one_step(), one_step())


def test_distributions_are_returned_on_request():
    model = tiny_model(score_threshold=0.0).eval()
    with torch.no_grad():
        detection = model([torch.rand(3, 48, 64)], return_distributions=True)[0]
    count = len(detection["boxes"])
    assert count > 0
    assert detection["box_distributions"].shape == (count, 4, 17)
    torch.testing.assert_close(detection["box_distributions"].sum(-1), torch.ones(count, 4))
    assert detection["edge_std"].shape == (count, 4) and (detection["edge_std"] >= 0).all()
    # The image was upscaled 1.5x inside the model: pixel quantities come back in original pixels.
    allowed = torch.tensor([8.0, 16, 32, 64, 128]) / 1.5
    assert ((detection["bin_size"].reshape(-1, 1) - allowed).abs().amin(1) < 1e-4).all()
    with pytest.raises(ValueError, match="Dirac"):
        tiny_model(box="dirac").eval()([torch.rand(3, 48, 64)], return_distributions=True)


def test_joint_score_logits_is_the_logit_of_the_product():
    a, b = torch.randn(50, 3) * 5, torch.randn(50, 1) * 5
    torch.testing.assert_close(joint_score_logits(a, b).sigmoid(), a.sigmoid() * b.sigmoid())
    assert torch.isfinite(joint_score_logits(torch.full((1, 1), 1e4), torch.full((1, 1), 1e4))).all()


def test_head_uses_the_reference_initialisation():
    model = tiny_model()
    torch.testing.assert_close(model.head.cls_out.bias, torch.full((3,), -4.59512), atol=1e-4, rtol=0)
    assert abs(model.head.box_out.weight.std().item() - 0.01) < 2e-3


def test_dirac_boxes_start_as_the_atss_anchor():
    model = tiny_model(box="dirac").eval()
    outputs, grid = model.head_outputs(torch.randn(1, 3, SIZE, SIZE))
    distances = outputs.box_outputs[0]  # [A, 4] in strides
    # anchor_scale 8: 4 strides from the location to each edge, give or take the random weights
    assert distances.min() > 3 and distances.max() < 5 and abs(distances.mean().item() - 4) < 0.1


def test_weights_file_alone_rebuilds_the_model(tmp_path):
    model = tiny_model(class_names=("cat", "dog", "bird")).eval()
    path = save_weights(model, tmp_path / "model.safetensors")
    loaded = load_model(path).eval()
    assert loaded.config == model.config and loaded.class_names == ("cat", "dog", "bird")
    image = torch.rand(3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.scored_outputs(loaded.transform([image])[0].tensors).scores,
            model.scored_outputs(model.transform([image])[0].tensors).scores,
        )


def test_weights_for_another_num_classes_or_reg_max_give_one_clear_error(tmp_path):
    path = save_weights(tiny_model(num_classes=3), tmp_path / "three.safetensors")
    with pytest.raises(WeightsError, match=r"mis-shaped.*head.cls_out.weight"):
        gfl_small(5, min_size=SIZE, max_size=SIZE, weights=path)
    with pytest.raises(WeightsError, match="head.box_out"):
        gfl_small(3, min_size=SIZE, max_size=SIZE, reg_max=8, weights=path)


def test_truncated_weights_file_gives_a_clear_error(tmp_path):
    path = save_weights(tiny_model(), tmp_path / "model.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="model.safetensors"):
        load_model(path)


@pytest.mark.parametrize(
    "images, targets, error, message",
    [
        ([torch.rand(1, 32, 32)], None, ValueError, r"shape \(1, 32, 32\).*\[3, H, W\]"),
        ([torch.rand(32, 32)], None, ValueError, r"\[3, H, W\]"),
        ([torch.randint(0, 9, (3, 32, 32))], None, TypeError, "dtype torch.int64"),
        ([torch.full((3, 32, 32), float("nan"))], None, ValueError, "NaN"),
        ([torch.rand(3, 32, 32)], [target([[1, 1, 5, 5]], [3])], ValueError, r"labels.*\[0, 2\]"),
        ([torch.rand(3, 32, 32)], [target([[5, 5, 1, 1]], [0])], ValueError, "x2 <= x1"),
        ([torch.rand(3, 32, 32)], [target([[1, 1, float("nan"), 5]], [0])], ValueError, "NaN"),
        ([torch.rand(3, 32, 32)], [], ValueError, "1 images but 0 targets"),
    ],
)
def test_bad_inputs_name_what_is_wrong(images, targets, error, message):
    model = tiny_model()
    if targets is None:
        model.eval()
    with pytest.raises(error, match=message):
        model(images, targets)


@pytest.mark.slow
def test_overfits_one_image_and_finds_every_box():
    model = tiny_model(num_classes=2, min_size=128, max_size=128)
    image = torch.full((3, 128, 128), 0.2)
    boxes = torch.tensor([[10.0, 12, 50, 60], [70, 20, 120, 90], [30, 80, 60, 110]])
    labels = torch.tensor([0, 1, 0])
    for (x1, y1, x2, y2), label in zip(boxes.long().tolist(), labels.tolist()):
        image[:, y1:y2, x1:x2] = torch.tensor([0.9, 0.1, 0.1] if label == 0 else [0.1, 0.8, 0.3])[:, None, None]
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    first = None
    for _ in range(60):
        loss = sum(model([image], [{"boxes": boxes, "labels": labels}]).values())
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    model.eval()
    with torch.no_grad():
        detection = model([image])[0]
    iou = box_iou(boxes, detection["boxes"]) * (labels[:, None] == detection["labels"][None])
    assert (iou.amax(1) > 0.7).all(), iou.amax(1)
