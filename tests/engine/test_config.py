import pytest

from gfocal.engine.config import TrainConfig, load_config, parse_overrides


def test_the_paper_recipe_is_one_name_away():
    c = load_config(recipe="paper")
    assert (c.model, c.optimizer, c.lr, c.batch_size, c.momentum, c.weight_decay, c.warmup_iters) == (
        "gfl_resnet50_fpn",
        "sgd",
        0.01,
        16,
        0.9,
        1e-4,
        500,
    )
    assert (c.epochs, c.step_epochs, c.schedule) == (12, (8, 11), "step")
    assert (c.scale_range, c.mosaic, c.photometric, c.ema, c.hflip) == (None, 0.0, False, False, 0.5)
    assert load_config(recipe="paper", overrides=["lr=0.02"]).lr == 0.02  # a recipe is defaults, not a lock
    with pytest.raises(ValueError, match="unknown recipe"):
        load_config(recipe="yolo")


def test_a_budget_without_epochs_fills_it_and_epochs_without_a_budget_are_required():
    assert TrainConfig(epochs=None, time_budget_minutes=5).epochs is None
    with pytest.raises(ValueError, match="time_budget_minutes"):
        TrainConfig(epochs=None)


def test_overrides_convert_to_field_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 24\nstep_epochs: [16, 22]\nmodel_overrides: {reg_max: 16}\n")
    c = load_config(
        path,
        [
            "batch_size=8",
            "lr=0.02",
            "ema=true",
            "clip_grad_norm=null",
            "step_epochs=20,23",
            "time_budget_minutes=1.5",
            "model_overrides.depth=18",
            "precision=bf16",
        ],
    )
    assert (c.epochs, c.batch_size, c.lr, c.ema, c.clip_grad_norm) == (24, 8, 0.02, True, None)
    assert c.step_epochs == (20, 23) and c.time_budget_minutes == 1.5 and c.precision == "bf16"
    assert c.model_overrides == {"reg_max": 16, "depth": 18}


def test_round_trip_through_dict_and_yaml(tmp_path):
    c = TrainConfig(epochs=5, step_epochs=(3, 4), model_overrides={"a": 1})
    assert TrainConfig.from_dict(c.to_dict()) == c
    (tmp_path / "c.yaml").write_text(c.to_yaml())
    assert load_config(tmp_path / "c.yaml") == c


def test_unknown_key_names_close_matches():
    with pytest.raises(ValueError, match="'bach_size'.*batch_size"):
        parse_overrides(["bach_size=4"])
    with pytest.raises(ValueError, match="unknown training config key 'lr_rate'"):
        TrainConfig.from_dict({"lr_rate": 0.1})


@pytest.mark.parametrize(
    "override, message",
    [
        ("epochs=1.5", "epochs must be int"),
        ("ema=maybe", "ema must be true or false"),
        ("schedule=linear", "schedule must be one of"),
        ("batch_size=0", "batch_size must be > 0"),
        ("step_epochs=101", "step_epochs must be increasing"),
        ("epochs", "key=value"),
        ("color_jitter=0.4,0.7,0.015", "color_jitter must be \\(brightness, contrast, saturation, hue\\)"),
        ("color_jitter=0.4,-0.1,0.7,0.015", "color_jitter must be"),
        ("color_jitter=0.4,0,0.7,0.6", "hue <= 0.5"),
        ("grayscale=1.5", "grayscale must be in"),
    ],
)
def test_bad_values_are_named(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_colour_jitter_strengths_are_read_from_the_command_line_and_reach_the_augmentation():
    from gfocal.engine.build import training_augmentation

    config = load_config(None, ["color_jitter=0.4,0.4,0.7,0.05", "grayscale=0.1"])
    assert config.color_jitter == (0.4, 0.4, 0.7, 0.05) and config.grayscale == 0.1
    augmentation = training_augmentation(config)
    assert (augmentation.color, augmentation.color_jitter, augmentation.grayscale) == (True, (0.4, 0.4, 0.7, 0.05), 0.1)
