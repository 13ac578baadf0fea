"""MLflow: the run's parameters, metrics and weights in a tracking store.

The store is ``MLFLOW_TRACKING_URI`` when set, else a local one inside the run folder: ``OUT/mlruns/mlflow.db``
with the artifacts in ``OUT/mlruns/artifacts`` (``mlflow ui --backend-store-uri sqlite:///OUT/mlruns/mlflow.db``).
A SQLite file rather than MLflow's plain-folder store, which MLflow 3 only opens behind an opt-out flag. The
experiment is ``MLFLOW_EXPERIMENT_NAME`` (default "gfocal"), the MLflow run is named after the run folder.

Parameters: the resolved training config, flattened (``model_overrides.reg_max``). Metrics: ``train/loss``,
each loss term and ``train/lr`` per step, sent in batches (a request per step would cost a step's time on a
remote server); ``val/AP``, ``val/AP50``, ... per evaluation. Artifacts: the final weights file
(``model.safetensors``) and, with a validation set, the best validation AP's (``model_best.safetensors``,
the one to deploy after an early stop). The MLflow run is marked finished (with the stop reason as the tag
``stop_reason``) or failed. A resumed run is a new MLflow run, tagged ``resumed_from_iteration``: MLflow cannot take back the points of the steps the resumed run
takes again, so continuing the old one would show them twice.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from gfocal.engine.events import EvaluationEnded, Event, RunEnded, RunFailed, RunStarted, StepEnded
from gfocal.engine.loggers.extra import require_extra

__all__ = ["MlflowLogger", "flatten"]

_SEND_EVERY = 1000  # metric points buffered before a request (MLflow's log_batch takes up to 1000)
_PARAMS_PER_REQUEST = 100  # MLflow's limit for log_batch


class MlflowLogger:
    """Records the run in MLflow through ``mlflow.tracking.MlflowClient`` (no global active run is touched)."""

    def __init__(self, out_dir: Path) -> None:
        require_extra("mlflow", "mlflow", "MLflow")
        self.out_dir = Path(out_dir)
        self.client: Any = None
        self.run_id = ""
        self.pending: list[Any] = []

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._start(event)
        elif isinstance(event, StepEnded):
            self._add({"loss": event.loss, **event.losses, "lr": event.lr}, "train", event.iteration)
        elif isinstance(event, EvaluationEnded):
            self._add(event.scalars, "val", event.iteration)
            self._send()
        elif isinstance(event, RunEnded):
            self._send()
            for weights in (event.weights, event.best_weights):
                if weights is not None:
                    self.client.log_artifact(self.run_id, str(weights))
            self.client.set_tag(self.run_id, "stop_reason", event.reason)
            self.client.set_terminated(self.run_id, "FINISHED")
        elif isinstance(event, RunFailed) and self.client is not None:
            self._send()
            self.client.set_terminated(self.run_id, "FAILED")

    def _start(self, event: RunStarted) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri, artifacts = self._store()
        self.client = MlflowClient(uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "gfocal")
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(name, artifact_location=artifacts)
        )
        run = self.client.create_run(experiment_id, run_name=self.out_dir.name)
        self.run_id = run.info.run_id
        if event.iteration:  # a resumed run is a new MLflow run: say where it took over
            self.client.set_tag(self.run_id, "resumed_from_iteration", str(event.iteration))
        params = [Param(key, str(value)) for key, value in flatten(event.config).items()]
        for start in range(0, len(params), _PARAMS_PER_REQUEST):
            self.client.log_batch(self.run_id, params=params[start : start + _PARAMS_PER_REQUEST])

    def _store(self) -> tuple[str, str | None]:
        """The tracking URI and, for the local store, where its artifacts go (None: the server decides)."""
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"], None
        store = self.out_dir.resolve() / "mlruns"
        store.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{store / 'mlflow.db'}", (store / "artifacts").as_uri()

    def _add(self, values: dict[str, float], prefix: str, step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self.pending += [Metric(f"{prefix}/{name}", value, stamp, step) for name, value in values.items()]
        if len(self.pending) >= _SEND_EVERY:
            self._send()

    def _send(self) -> None:
        for start in range(0, len(self.pending), _SEND_EVERY):
            self.client.log_batch(self.run_id, metrics=self.pending[start : start + _SEND_EVERY])
        self.pending = []


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys: ``{"model_overrides": {"reg_max": 8}}`` -> ``{"model_overrides.reg_max": 8}``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
