"""How a deployment asks a Ray cluster for room (`resources:` -> num_cpus, memory, num_gpus), and
that the per-CPU cap on local replica processes does not count replicas placed on a cluster."""

from __future__ import annotations

import pytest

from scorer.spec.limits import local_replica_problem
from scorer.spec.models import Endpoint, KubernetesResources, OnlineDeployment
from serving.replicas.factory import load_factory, on_cluster, runs_here, use_cluster
from serving.replicas.ray_actor import Placement, placement_for, ray_resources


def test_kubernetes_resources_map_to_ray_options() -> None:
    res = KubernetesResources(requests={"cpu": "500m", "memory": "2Gi"}, limits={"cpu": 2, "nvidia.com/gpu": 1})
    assert ray_resources(res) == {"num_cpus": 0.5, "memory": 2 << 30, "num_gpus": 1.0}
    assert ray_resources(KubernetesResources(limits={"cpu": "1.5"})) == {"num_cpus": 1.5}  # a limit alone counts
    assert ray_resources(None) == {}
    d = OnlineDeployment(model="m", resources=res, replica_unresponsive_ms=250)
    p = placement_for("ep", d, b"s")
    assert (p.num_cpus, p.memory, p.num_gpus, p.unresponsive_s) == (0.5, 2 << 30, 1.0, 0.25)
    assert p.actor_options() == {"num_cpus": 0.5, "memory": 2 << 30, "num_gpus": 1.0, "scheduling_strategy": "SPREAD"}
    assert Placement("ep", b"s").actor_options() == {"num_cpus": 1.0, "scheduling_strategy": "SPREAD"}
    assert "secret-bytes" not in repr(Placement("ep", b"secret-bytes"))


@pytest.mark.parametrize("bad", ["lots", "-1", "0"])
def test_a_resource_that_is_not_a_positive_quantity_names_the_field(bad: str) -> None:
    with pytest.raises(ValueError, match=r"resources\.requests\.cpu"):
        ray_resources(KubernetesResources(requests={"cpu": bad}))


def test_replica_unresponsive_ms_is_a_positive_integer_defaulting_to_1000() -> None:
    assert OnlineDeployment(model="m").replica_unresponsive_ms == 1000
    with pytest.raises(ValueError):
        OnlineDeployment(model="m", replica_unresponsive_ms=0)
    assert OnlineDeployment(model="m", replica_handle="ray").replica_handle == "ray"


def test_ray_needs_a_cluster_and_local_goes_to_the_cluster_under_address() -> None:
    with pytest.raises(ValueError, match="needs a Ray cluster"):
        load_factory("ray")
    assert runs_here("local") and not on_cluster("local") and on_cluster("ray")
    use_cluster(b"secret")
    try:
        assert on_cluster("local") and not runs_here("local")
        assert not on_cluster("python:mod:fn")
        factory = load_factory("local", "ep", OnlineDeployment(model="m"))
        assert factory.__module__ == "serving.replicas.ray_actor"
    finally:
        use_cluster(None)


def test_local_cap_does_not_count_replicas_on_a_cluster() -> None:
    ep = Endpoint.model_validate({"name": "e", "traffic": {"a": 100}, "deployments": {
        "a": {"model": "m", "instance_count": 50}, "b": {"model": "m", "instance_count": 50, "replica_handle": "ray"}}})
    assert local_replica_problem(ep, cpus=1) is not None  # a's 50 processes on one CPU
    assert local_replica_problem(ep, cpus=1, on_cluster=True) is None
    only_ray = Endpoint.model_validate({"name": "e", "traffic": {"b": 100}, "deployments": {
        "b": {"model": "m", "instance_count": 50, "replica_handle": "ray"}}})
    assert local_replica_problem(only_ray, cpus=1) is None
