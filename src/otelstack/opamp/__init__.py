"""The otelstack OpAMP server: fleet registry, layered remote config, staged rollouts (docs/opamp.md)."""
