"""Both config dataclasses refuse unknown names through the one helper, naming close matches."""

import pytest

from gfocal.engine.config import TrainConfig
from gfocal.models import ModelConfig


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: ModelConfig(num_classes=1).replace(reg_mx=3),
            r"unknown model option 'reg_mx' \(did you mean reg_max\?\)$",
        ),
        (
            lambda: ModelConfig.from_dict({"num_classes": 1, "zzzz": 1}),
            r"unknown model option 'zzzz'; known: num_classes, ",
        ),
        (lambda: TrainConfig().replace(epoch=3), r"unknown training config key 'epoch' \(did you mean epochs"),
        (lambda: TrainConfig.from_dict({"qqqq": 1}), r"unknown training config key 'qqqq'; known: model, "),
    ],
)
def test_unknown_names_are_errors_naming_close_matches_or_the_known_ones(build, message):
    with pytest.raises(ValueError, match=message):
        build()
