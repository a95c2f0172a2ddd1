"""A strict, stateful double of Nomad's HTTP API for tests (never part of the product).

Start it with `NomadDouble(node_name=...).start()`, talk to `double.addr` as
to a Nomad agent, and call `stop()` at the end. See `server.NomadDouble`.
"""

from .errors import ApiError
from .server import NomadDouble

__all__ = ["ApiError", "NomadDouble"]
