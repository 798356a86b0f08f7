"""A model answering a DataFrame of mixed types: strings, floats, ints, bools (models-from-code)."""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class Mixed(PythonModel):
    def predict(self, context, model_input, params=None):
        scale = float((params or {}).get("scale", 1.0))
        x = model_input["x"].astype(float)
        return pd.DataFrame({
            "label": [f"{n}-{'hi' if v > 0.5 else 'lo'}" for n, v in zip(model_input["name"], x, strict=True)],
            "score": x * scale / 3.0,
            "count": (x * 10).round().astype("int64"),
            "flag": x > 0.5,
        })


mlflow.models.set_model(Mixed())
