"""Batch processor run by the Nomad periodic job: reads job configurations
from Vault KV v2, processes them and writes one JSON result per job."""

__version__ = "1.0.0"

# Version of the layout of result and summary files; bump it on any change
# that removes or renames a field.
SCHEMA_VERSION = 1
