"""The version of this faena, in a module of its own: brokers record it with the schema
they migrate, without importing the package root (and the App with it)."""

__version__ = "0.1.0"
