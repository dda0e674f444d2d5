"""Backend renders: the stores the gateways write to and Grafana on top of them."""
