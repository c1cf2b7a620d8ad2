"""One module per subcommand. Each exposes ``register(subparsers)``.

Modules here import only argparse at the top; the work (and its imports)
happens inside the handler, so ``fmp-install --help`` stays fast.
"""

COMMAND_MODULES = (
    "installer.commands.validate",
    "installer.commands.schema",
    "installer.commands.discover",
    "installer.commands.plan",
    "installer.commands.storage",
    "installer.commands.status",
    "installer.commands.demo",
    "installer.commands.lab",
)
