"""A model that sleeps `max(seconds)` and echoes the column (models-from-code)."""

import time

import mlflow
from mlflow.pyfunc import PythonModel


class Sleeper(PythonModel):
    def predict(self, context, model_input, params=None):
        time.sleep(float(model_input["seconds"].max()))
        return model_input["seconds"].tolist()


mlflow.models.set_model(Sleeper())
