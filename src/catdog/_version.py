"""The package version, in a module of its own so that library modules can read it without `import catdog`."""

__version__ = "0.1.0"
