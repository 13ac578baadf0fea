"""Training, evaluation and prediction: the loops that run models over data.

Training (``train``) with its schedules, EMA, checkpoints and distributed set-up, and the events it
tells subscribers (``train(config, callbacks=[...])``, :mod:`gfocal.engine.events`);
COCO evaluation (``evaluate_detections``, ``evaluate_model``); prediction on image
files in :mod:`gfocal.engine.predict`; both, and the analysis tools, run a model over
images through one loop (``run_over_images``).

Typical use::

    from gfocal.engine import load_config, train
    result = train(load_config("train.yaml", ["epochs=24", "batch_size=8"]))
"""

from gfocal.lazy import lazy_exports

# Each public name and the module that defines it, imported on first use (PEP 562): importing
# gfocal.engine.config (the CLI's recipes) then does not load torch, and `gfocal --help` stays quick.
_HOMES = {
    "CheckpointError": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "TrainConfig": "config",
    "load_config": "config",
    "parse_overrides": "config",
    "ModelEMA": "ema",
    "Callback": "events",
    "CheckpointSaved": "events",
    "EvaluationEnded": "events",
    "FirstStepTimed": "events",
    "PlanMade": "events",
    "RunEnded": "events",
    "RunFailed": "events",
    "RunStarted": "events",
    "StepEnded": "events",
    "Evaluation": "evaluate",
    "coco_ground_truth": "evaluate",
    "evaluate_detections": "evaluate",
    "evaluate_model": "evaluate",
    "model_evaluation": "evaluate",
    "evaluate_weights": "evaluate",
    "run_evaluation": "evaluate",
    "format_results": "evaluate",
    "predict_dataset": "evaluate",
    "LoadedImage": "inference_loop",
    "run_over_images": "inference_loop",
    "TrainData": "build",
    "TrainSetupError": "build",
    "TrainingDiverged": "run",
    "LRSchedule": "schedule",
    "fit_to_budget": "schedule",
    "TrainResult": "trainer",
    "train": "trainer",
}

__all__ = sorted(_HOMES)

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
