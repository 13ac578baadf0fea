"""Training, evaluation and prediction: the loops that run models over data.

Training (``train``) with its schedules, EMA, checkpoints and distributed set-up;
COCO evaluation (``evaluate_detections``, ``evaluate_model``); prediction on image
files in :mod:`gfocal.engine.predict`.

Typical use::

    from gfocal.engine import load_config, train
    result = train(load_config("train.yaml", ["epochs=24", "batch_size=8"]))
"""

from gfocal.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gfocal.engine.config import TrainConfig, load_config, parse_overrides
from gfocal.engine.ema import ModelEMA
from gfocal.engine.evaluate import coco_ground_truth, evaluate_detections, evaluate_model, format_results, predict_dataset
from gfocal.engine.build import TrainData, TrainSetupError
from gfocal.engine.run import TrainingDiverged
from gfocal.engine.schedule import LRSchedule, fit_to_budget
from gfocal.engine.trainer import TrainResult, train

__all__ = [
    "CheckpointError",
    "LRSchedule",
    "ModelEMA",
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "TrainingDiverged",
    "TrainSetupError",
    "coco_ground_truth",
    "evaluate_detections",
    "evaluate_model",
    "fit_to_budget",
    "format_results",
    "load_checkpoint",
    "load_config",
    "parse_overrides",
    "predict_dataset",
    "save_checkpoint",
    "train",
]
