"""pyxim: a mail transfer agent that runs Exim-style configurations."""

__version__ = "0.1.0"
# The Exim release whose documented behaviour pyxim follows; $exim_version reports it.
EXIM_COMPAT_VERSION = "4.96"
