"""Validators for rendered artefacts."""
