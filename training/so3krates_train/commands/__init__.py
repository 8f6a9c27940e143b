"""`so3krates` subcommands of the training package (registered under `so3krates.commands`)."""
