"""Backbone plug-ins. Every module in this package is imported on first use of the registry; each
registers factories with ``@register_backbone(name)``. Drop a new file here to add a backbone to every tool."""
