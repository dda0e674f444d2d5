"""The platform's parts as Pulumi components (platform_component.py) and the program that creates them
all for one stack (program.py)."""
