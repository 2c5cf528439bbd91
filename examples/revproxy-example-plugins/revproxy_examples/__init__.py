"""Example revproxy plugins (docs/writing-plugins.md): the code lives here; the light
plugin modules in ``revproxy/plugins/`` import it only when a config names a plugin."""
