"""netc: a declarative architecture-spec compiler for convolutional networks."""
from netc.api import Network, load, loads, optimize
from netc.errors import NetcError
from netc.spec.expand import Limits

__all__ = ["Limits", "NetcError", "Network", "load", "loads", "optimize"]
__version__ = "0.1.0"
