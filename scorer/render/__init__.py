"""`scorer render k8s`: Kubernetes manifests from the same endpoint YAML that `scorer serve` reads."""

from scorer.render.k8s import RenderOptions, render_k8s, write_manifests

__all__ = ["RenderOptions", "render_k8s", "write_manifests"]
