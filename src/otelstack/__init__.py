"""otelstack: one model of an OpenTelemetry platform, rendered for VMs, Kubernetes and an OpAMP fleet."""

__version__ = "0.1.0"
