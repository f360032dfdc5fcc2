"""Backbone plug-ins. Every module in this package is imported on first use of the registry; each
registers named factory functions with ``@register_backbone()`` (the function's name is the
backbone's name: grep finds its definition). Drop a new file here to add a backbone to every tool."""
