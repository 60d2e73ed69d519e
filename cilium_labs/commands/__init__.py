"""Click commands of each area, registered by ``cilium_labs.cli``."""
