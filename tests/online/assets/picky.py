"""A model that doubles `x` and raises on a negative value (models-from-code), for batching."""

import mlflow
from mlflow.pyfunc import PythonModel


class Picky(PythonModel):
    def predict(self, context, model_input, params=None):
        if (model_input["x"] < 0).any():
            raise ValueError("x must not be negative")
        return (model_input["x"] * 2).tolist()


mlflow.models.set_model(Picky())
