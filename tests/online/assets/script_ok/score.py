"""Azure ML online contract: init() once, run(raw_data) gets the body as a string."""

import json
import os

STATE = {}


def init():
    STATE["model_dir"] = os.environ.get("AZUREML_MODEL_DIR")
    STATE["greeting"] = os.environ.get("GREETING", "")


def run(raw_data):
    data = json.loads(raw_data)
    if data.get("fail"):
        raise RuntimeError("the script was asked to fail")
    return {"echo": data, "greeting": STATE["greeting"], "type": type(raw_data).__name__}
