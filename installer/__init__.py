"""fmp-install: the engine. Pure core plus I/O at the edges; never imports the UI."""

__version__ = "0.1.0"
