"""The formal child protection procedure: spec, loader, calendar, compiled machine and proofs.

Nothing here runs at import time, prints, or imports the simulation or reporting layers.
"""

from model import native as _native

__path__ = _native.attach(__name__, __path__)
