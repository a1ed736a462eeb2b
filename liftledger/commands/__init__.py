"""The subcommands of `liftledger`, one module per command group.

Each module holds its `cmd_*` handlers and registers their parsers with `add_commands`;
`liftledger.cli` calls them in the order `liftledger --help` lists the groups.
"""
