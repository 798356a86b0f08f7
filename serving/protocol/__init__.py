"""Codecs: the MLflow scoring protocol's and Open Inference (V2) bodies, JSON bounds, payload shapes."""
