"""Evidence: after brief training, ambiguous-by-construction objects rank above clean ones.

The synthetic generator blurs or partly occludes some edges and records which
(``ambiguous_edges``). A light ``gfl_small`` trains for a fixed number of
iterations on CPU with a fixed seed (``benchmarks/ambiguity_auroc.py`` is the
longer version, whose numbers are in docs/analysis.md); the held-out
annotations are probed and the AUROC of the annotation ranking by
``disagreement`` (the largest DFL of an annotated edge under its distribution)
against the recorded labels must clear a floor that a random score does not
reach (with ~55 ambiguous and ~55 clean objects, a random score's AUROC has a
standard deviation of ~0.05 around 0.5).
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from ambiguity_auroc import auroc_table, make_data, probe_statistics, train_briefly  # noqa: E402

ITERATIONS = 300
SIZE = 64
# Keep the CPU budget: the backbone stays at its random initialisation (a fixed random feature
# extractor, no backward through it); FPN and head train. About 4x faster than training it.
FROZEN = {"trainable_backbone_layers": 0}


@pytest.mark.slow
def test_disagreement_ranks_blurred_and_occluded_objects_first(tmp_path):
    train, val = make_data(tmp_path, num_train=300, num_val=100, size=SIZE, seed=0)
    model = train_briefly(train, SIZE, ITERATIONS, seed=0, model_options=FROZEN)
    table = auroc_table(probe_statistics(model, val), val)
    scores = table["auroc"]
    assert table["ambiguous"] >= 40 and table["annotations"] - table["ambiguous"] >= 40
    # Measured about 0.8 with this seed (random: 0.5 +- 0.05). The label-free shape score needs more
    # training than this budget (0.58 here, within ~2 standard deviations of chance, so it is not
    # asserted); its longer-run numbers are in docs/analysis.md.
    assert scores["annotated_nll: box max"] > 0.65, scores
