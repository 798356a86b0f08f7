"""Wire formats: the MLflow scoring protocol and the router-replica frame protocol."""
