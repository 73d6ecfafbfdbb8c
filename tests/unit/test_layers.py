"""The layers import one way: features -> modeling -> forecast -> training / serving ->
review, and serving (and the pipeline review on top of it) loads and scores a model
without training's code or scikit-learn."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.declarations import FeatureSet, FeatureSpec
from modeling.artifact import ALL, ScoringModel
from modeling.calibrator import Calibrator

ROOT = Path(__file__).resolve().parents[2]

# Package -> top-level packages its modules must never import (statically or lazily).
FORBIDDEN = {
    "features": {"modeling", "training", "serving", "leadscore"},
    "modeling": {"training", "serving", "forecast", "leadscore", "sklearn"},
    "forecast": {"training", "serving", "leadscore", "sklearn"},
    "training": {"serving", "leadscore"},
    "serving": {"training", "sklearn"},
    "review": {"training", "leadscore", "sklearn"},
}


def _imports(path: Path) -> set[str]:
    """Top-level package of every import statement in a file, at any depth."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_against_the_layers(package: str) -> None:
    bad = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {k: v for k, v in bad.items() if v} == {}


def _run(code: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_importing_the_serving_app_imports_neither_training_nor_sklearn() -> None:
    """Nor does the app `leadscore serve` runs, with the pipeline review's page."""
    found = _run(
        "import json, sys\n"
        "import serving.app, serving.batch, serving.server, serving.models, review.web\n"
        "print(json.dumps({'loaded': sorted(m for m in sys.modules\n"
        "    if m.split('.')[0] in ('training', 'sklearn'))}))\n"
    )
    assert found == {"loaded": []}


def test_loading_and_scoring_a_saved_model_needs_no_sklearn(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=400), "y": rng.normal(size=400)})
    label = (X["x"] + 0.5 * rng.normal(size=400) > 0).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 5},
        lgb.Dataset(X, label),
        num_boost_round=5,
    )
    fs = FeatureSet(
        name="tiny_v1",
        version=1,
        task="lead_qualification",
        entity_key="lead_id",
        features=(
            FeatureSpec("x", "lead", "float", "x is {value}"),
            FeatureSpec("y", "lead", "float", "y is {value}"),
        ),
    )
    model = ScoringModel(
        "lead_qualification", fs, {ALL: booster}, {ALL: Calibrator("sigmoid", a=0.9, b=0.1)}
    )
    model.save(tmp_path / "model")
    expected = model.predict_proba(X.head(3)).tolist()
    found = _run(
        "import json, sys\n"
        "import pandas as pd\n"
        "from serving.models import PathSource\n"
        f"m = PathSource({{'lead_qualification': {str(tmp_path / 'model')!r}}})"
        ".load('lead_qualification').model\n"
        f"p = m.predict_proba(pd.DataFrame({X.head(3).to_dict('list')!r})).tolist()\n"
        "print(json.dumps({'p': p, 'sklearn': 'sklearn' in sys.modules,\n"
        "                  'training': 'training' in sys.modules}))\n"
    )
    assert found == {"p": expected, "sklearn": False, "training": False}
