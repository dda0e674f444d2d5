"""Collector configuration engine: agent, gateway, emergency and safe-minimal profiles, supervisor configs."""
