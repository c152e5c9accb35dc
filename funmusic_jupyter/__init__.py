"""funmusic-jupyter (development placeholder: the lead restores the full public API once
_client.py, _api.py and _magics.py exist; see /work/init_final.py)."""

from ._version import __version__

__all__ = ["__version__"]
