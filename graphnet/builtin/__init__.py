"""graphnet's own plugins, registered exactly like third-party ones."""
