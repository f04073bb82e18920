"""The version of p2pnet_tx, kept apart so that setup.cfg can read it without importing."""

__version__ = "0.1.0"
