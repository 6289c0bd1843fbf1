"""Command-line interface: one module per subcommand, dispatched by :mod:`kd3d.cli.main`."""
