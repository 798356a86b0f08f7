"""The router's side of replicas: handles, the local handle, the supervisor and the balancer."""
