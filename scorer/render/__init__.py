"""`scorer render k8s`: Kubernetes manifests from the same endpoint YAML that `scorer serve` reads."""

from scorer.render.k8s import render_k8s, write_manifests
from scorer.render.options import RenderOptions

__all__ = ["RenderOptions", "render_k8s", "write_manifests"]
