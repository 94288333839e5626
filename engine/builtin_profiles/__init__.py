"""The built-in profiles, one TOML file each, shipped as package data (read with importlib.resources,
so a wheel install has them too). User profiles in home/profiles/ override these by name."""
