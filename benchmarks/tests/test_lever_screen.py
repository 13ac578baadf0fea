"""benchmarks/lever_screen.py: ``--infer`` reads model inference options as typed YAML values."""

from __future__ import annotations

import argparse

import lever_screen
import pytest

from gfocal.models import ModelConfig


def test_inference_options_are_parsed_to_the_types_the_model_config_takes():
    options = lever_screen.parse_inference("box_voting=distribution, box_voting_sigma=0.05,max_detections=300")
    assert options == {"box_voting": "distribution", "box_voting_sigma": 0.05, "max_detections": 300}
    assert ModelConfig(num_classes=1).replace(**options).box_voting_sigma == 0.05


def test_an_option_without_a_value_is_refused():
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
        lever_screen.parse_inference("box_voting")
