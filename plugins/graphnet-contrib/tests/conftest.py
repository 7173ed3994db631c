"""Run from a source checkout too: if graphnet-contrib is not installed, import it
from this distribution's directory (the tests register what they check)."""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("graphnet_contrib") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
