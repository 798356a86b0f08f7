"""scorer: serve and batch-score MLflow models from one Azure ML-style endpoint YAML."""

__version__ = "0.1.0"
