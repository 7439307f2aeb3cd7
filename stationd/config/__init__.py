"""Configuration: the key registry, the settings store and the station config file."""
