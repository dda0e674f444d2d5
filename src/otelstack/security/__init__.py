"""Security layout shared by every delivery path: TLS file locations, ports, network flows."""
