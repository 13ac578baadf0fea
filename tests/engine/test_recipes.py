"""The named recipes: each a valid TrainConfig, the demo's the values its figures were measured with, and the
module plain data that a benchmark can read without importing gfocal."""

import ast
import runpy
from pathlib import Path

import pytest

import gfocal.engine.recipes as recipes_module
from gfocal.engine.config import TrainConfig, load_config
from gfocal.engine.recipes import RECIPES
from gfocal.models.config import image_size_options


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_is_a_valid_config_that_sets_its_values(name):
    config = TrainConfig.from_recipe(name)
    assert {k: getattr(config, k) for k in RECIPES[name].values} == {
        k: tuple(v) if isinstance(v, list) else v for k, v in RECIPES[name].values.items()
    }
    assert load_config(recipe=name) == config


def test_the_cpu_benchmarks_recipe_is_the_one_their_figures_were_measured_with():
    # Written out field by field: what the CPU benchmarks (and `gfocal demo` before #28) have always trained with.
    assert TrainConfig.from_recipe("paper-small") == TrainConfig(
        model="gfl_small",
        model_overrides={"min_size": 256, "max_size": 256},
        scale_range=None,
        mosaic=0.0,
        photometric=False,
        epochs=12,
        batch_size=8,
        optimizer="sgd",
        lr=0.02,
        weight_decay=1e-4,
        warmup_iters=100,
        schedule="cosine",
        ema=False,
        eval_interval=0,
    )


def test_the_recipes_module_is_plain_data_readable_from_its_file():
    tree = ast.parse(Path(recipes_module.__file__).read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "gfocal" not in imported  # benchmarks/demo_steps.py reads it while an older gfocal is imported
    assert runpy.run_path(recipes_module.__file__)["RECIPES"]["paper-small"].values == RECIPES["paper-small"].values


def test_an_unknown_recipe_names_the_known_ones():
    with pytest.raises(ValueError, match=f"unknown recipe 'papr'; available: {', '.join(RECIPES)}$"):
        TrainConfig.from_recipe("papr")


def test_model_options_set_on_top_of_a_recipe_merge_with_its_own():
    config = load_config(recipe="paper-small", overrides=["model_overrides.reg_max=8"])
    assert config.model_overrides == {"min_size": 256, "max_size": 256, "reg_max": 8}
    assert TrainConfig.from_recipe("paper-small", model_overrides={"max_size": 128}).model_overrides == {
        "min_size": 256,
        "max_size": 128,
    }


def test_the_demo_recipe_is_the_small_data_recipe_on_gfl_nano_at_the_demo_images_size_without_zoom():
    # Chosen on a CPU without native bf16 (#28, docs/real_data.md): the small-data recipe minus zoom-and-crop.
    demo, default = TrainConfig.from_recipe("demo"), TrainConfig.from_recipe("default")
    changed = {f: getattr(demo, f) for f in TrainConfig.__dataclass_fields__ if getattr(demo, f) != getattr(default, f)}
    assert changed == {"model": "gfl_nano", "image_size": 256, "batch_size": 8, "scale_range": None, "eval_interval": 0}
    assert demo.optimizer == "adamw" and demo.mosaic > 0 and demo.ema


def test_the_2x_multiscale_recipe_is_mmdetection_s_ms_2x_config():
    """gfl_*_ms-2x_coco.py: max_epochs 24, MultiStepLR milestones [16, 22], RandomResize scale (1333, 480)-(1333, 800)."""
    config, paper = TrainConfig.from_recipe("paper-2x-ms"), TrainConfig.from_recipe("paper")
    assert (config.epochs, config.step_epochs, config.schedule, config.multiscale) == (
        24,
        (16, 22),
        "step",
        (800, 1333),
    )
    same = ("model", "optimizer", "lr", "batch_size", "momentum", "weight_decay", "warmup_iters", "scale_range")
    assert {f: getattr(config, f) for f in same} == {f: getattr(paper, f) for f in same}
    # the longer sides drawn give shorter sides of 480 to 800 pixels at the model's 800/1333 ratio
    shorter = [image_size_options(800, 1333, longer)["min_size"] for longer in (800, 1024, 1333)]
    assert shorter == [480, 615, 800]
    assert TrainConfig.from_recipe("paper-2x-ms", model="gfl_resnext101_32x4d_dcn_fpn").epochs == 24
