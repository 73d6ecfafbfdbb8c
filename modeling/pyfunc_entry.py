"""MLflow "models from code" entry point for a leadscore model.

MLflow stores this file's source with the model and runs it at load time, so the
model is rebuilt from plain files (LightGBM text + JSON) and nothing is pickled.
The package never imports this module: running it is what registers the model
object with MLflow (``set_model``), which is its only purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

ARTIFACT_KEY = "scoring_model"


class LeadscorePyfunc(PythonModel):
    """Calibrated P(label=1) per row, from the ScoringModel stored as an artifact."""

    def load_context(self, context: PythonModelContext) -> None:
        from modeling.artifact import ScoringModel

        self.model = ScoringModel.load(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        return self.model.predict_proba(model_input)


mlflow.models.set_model(LeadscorePyfunc())
