"""fleetcompat: which hosts of a fleet can run which container images."""
