"""The ``local`` backend's parts: real Kubernetes and Cilium programs built through the Go module proxy, run in
network namespaces of this host (see docs/local.md)."""
