"""The package's version, written here only: the build reads it from this file
(pyproject.toml's ``[tool.hatch.version]``), the package and the CLI import it."""

__version__ = "0.1.0"
