"""The ablation's runs: one base TrainConfig, changed only by seed, folder and the variant's model options."""

from pathlib import Path

from gfocal.engine.ablation import AblationSettings, _train_config, ablation_base
from gfocal.engine.config import TrainConfig
from gfocal.models.variants import VARIANTS


def test_a_run_is_the_paper_recipe_with_the_ablation_budget_and_its_variant():
    settings = AblationSettings(ablation_base("train.json", "val.json", "runs"), seeds=(1,))
    run = _train_config(settings, VARIANTS["atss"].overrides, 1, Path("runs/atss_seed1"))
    # Written out field by field: the values the ablation's runs have always trained with.
    expected = TrainConfig.from_recipe(
        "paper",
        model="gfl_small",
        model_overrides={"min_size": 256, "max_size": 256, "classification": "focal", "box": "dirac"},
        train_data="train.json",
        val_data="val.json",
        epochs=5,
        batch_size=8,
        lr=0.02,
        warmup_iters=100,
        schedule="cosine",
        eval_interval=0,
        seed=1,
        workers=2,
        precision="auto",
        channels_last=True,
        log_interval=1,
        out_dir=str(Path("runs/atss_seed1")),
    )
    assert run == expected
    assert settings.base.model_overrides == {"min_size": 256, "max_size": 256}  # the base is left as it was


def test_training_fields_override_the_budget():
    base = ablation_base("t.json", "v.json", "runs", epochs=1, model_overrides={"max_size": 64}, precision="fp32")
    assert (base.epochs, base.model_overrides, base.precision, base.lr) == (
        1,
        {"min_size": 256, "max_size": 64},  # merged into the recipe's, key by key
        "fp32",
        0.02,
    )
