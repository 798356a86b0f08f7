"""A scoring script whose init() fails: the replica cannot start."""


def init():
    raise RuntimeError("cannot open the feature store")


def run(raw_data):
    return raw_data
