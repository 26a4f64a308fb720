"""One module per `malenia` subcommand, each with `register(subparsers)`."""
