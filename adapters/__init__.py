"""Everything that touches the outside: settings, persistence wiring, blob stores, the CLI."""
