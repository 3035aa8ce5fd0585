"""harness: installs PostgreSQL money-path functions and proves they keep money safe."""

__version__ = "0.1.0"
