"""Evidence: after brief training, ambiguous-by-construction objects rank above clean ones.

The synthetic generator blurs or partly occludes some edges and records which
(``ambiguous_edges``, the ``"ambiguity"`` preset). The engine trains its
``"ambiguity"`` recipe (a light ``gfl_small``) for a few hundred steps on CPU with
a fixed seed (``benchmarks/ambiguity_auroc.py`` is the longer version, whose
numbers are in docs/analysis.md); the held-out annotations are probed and the
AUROC of the annotation ranking by ``disagreement`` (the largest DFL of an
annotated edge under its distribution) against the recorded labels must clear a
floor that a random score does not reach (with ~55 ambiguous and ~55 clean
objects, a random score's AUROC has a standard deviation of ~0.05 around 0.5).
"""

import pytest

from gfocal.analysis.evaluation import auroc_table, probe_statistics
from gfocal.data import load_dataset
from gfocal.data.synthetic import make_synthetic_splits
from gfocal.engine import TrainConfig, train
from gfocal.models import load_model


@pytest.mark.slow
def test_disagreement_ranks_blurred_and_occluded_objects_first(tmp_path):
    train_json, val_json = make_synthetic_splits(tmp_path / "data", "ambiguity", seed=0, num_train=300, num_val=100)
    config = TrainConfig.from_recipe(
        "ambiguity",
        train_data=str(train_json),
        # Keep the CPU budget: the backbone stays at its random initialisation (a fixed random feature
        # extractor, no backward through it); FPN and head train. About 4x faster than training it.
        model_overrides={"trainable_backbone_layers": 0},
        epochs=8,  # 37 steps each
        precision="fp32",
        workers=0,
        out_dir=str(tmp_path / "run"),
    )
    model = load_model(train(config).weights).eval()
    val = load_dataset(val_json, warn=False)
    table = auroc_table(probe_statistics(model, val), val)
    scores = table["auroc"]
    assert table["ambiguous"] >= 40 and table["annotations"] - table["ambiguous"] >= 40
    # Measured about 0.8 with this seed (random: 0.5 +- 0.05). The label-free shape score needs more
    # training than this budget (0.58 here, within ~2 standard deviations of chance, so it is not
    # asserted); its longer-run numbers are in docs/analysis.md.
    assert scores["annotated_nll: box max"] > 0.65, scores
