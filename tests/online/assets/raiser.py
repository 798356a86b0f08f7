"""A model that always raises, with a message the client should see (models-from-code)."""

import mlflow
from mlflow.pyfunc import PythonModel


class Raiser(PythonModel):
    def predict(self, context, model_input, params=None):
        if len(model_input) > 0:
            raise ValueError("feature x must be positive for this model")
        return []


mlflow.models.set_model(Raiser())
