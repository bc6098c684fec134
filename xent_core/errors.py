"""The xent exception hierarchy: every error xent raises on purpose is a ``XentError``."""

from __future__ import annotations


class XentError(Exception):
    """Base class of every error xent raises deliberately."""


class UnknownComponentError(XentError, LookupError):
    """No registered component has the requested name."""


class AmbiguousComponentError(XentError, LookupError):
    """A short name matches components of several plugins; use a qualified ``plugin:name``."""


class BadParameterError(XentError, ValueError):
    """A component was given an unknown or invalid parameter."""


class BadInputError(XentError, ValueError):
    """Input data has a wrong shape, dtype, device, range or non-finite values."""


class PluginLoadError(XentError):
    """A plugin failed to import, to validate, or to register its components."""


class RegistrationError(XentError):
    """A plugin tried to register something invalid (bad name, duplicate, bad target)."""


class NotAvailableError(XentError):
    """A component exists but cannot run here (missing package, no GPU, ...)."""


class FitError(XentError):
    """A fit could not be performed or did not converge."""
