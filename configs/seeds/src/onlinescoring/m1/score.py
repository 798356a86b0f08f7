"""An Azure ML-style online scoring script, as the seed's real-time endpoint names it.

init() runs once per replica with AZUREML_MODEL_DIR pointing at the model's folder;
run(raw_data) gets each request body as a string and returns something JSON-serialisable.
"""

import json
import os

import mlflow.pyfunc
import pandas as pd

model = None


def init():
    global model
    model = mlflow.pyfunc.load_model(os.environ["AZUREML_MODEL_DIR"])


def run(raw_data):
    body = json.loads(raw_data)
    # Azure's `data` / `input_data` wrappers, or MLflow's `dataframe_split` (the model's input example)
    rows = body.get("data", body.get("input_data", body.get("dataframe_split", body)))
    frame = pd.DataFrame(rows["data"], columns=rows["columns"]) if isinstance(rows, dict) else pd.DataFrame(rows)
    return {"predictions": model.predict(frame).tolist()}
