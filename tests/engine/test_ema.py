import math

import torch
from torch import nn

from gfocal.engine.ema import ModelEMA


def test_ema_follows_the_formula():
    model = nn.Linear(2, 1)
    ema = ModelEMA(model, decay=0.9, ramp=10.0)
    start = model.weight.detach().clone()
    expected = start.clone()
    for step in range(1, 6):
        with torch.no_grad():
            model.weight.add_(1.0)
        ema.update(model)
        d = 0.9 * (1 - math.exp(-step / 10.0))
        expected = d * expected + (1 - d) * model.weight.detach()
    torch.testing.assert_close(ema.module.weight, expected)
    assert not ema.module.training and not ema.module.weight.requires_grad


def test_integer_buffers_are_copied_and_state_round_trips():
    model = nn.BatchNorm1d(3)
    ema = ModelEMA(model)
    model.train()(torch.randn(4, 3))
    ema.update(model)
    assert ema.module.num_batches_tracked == 1
    other = ModelEMA(nn.BatchNorm1d(3))
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1
    torch.testing.assert_close(other.module.running_mean, ema.module.running_mean)
