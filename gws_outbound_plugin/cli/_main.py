"""``main(argv)``: the command line's entry point."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ._commands import _OPERATION_COMMANDS
from ._common import EXIT_INTERRUPTED, EXIT_USAGE, PROG, _Context, _Interrupted, _UsageError
from ._parser import (
    _refuse_password_arguments,
    build_parser,
    command_index,
    refuse_unknown_command,
    refuse_unrecognized,
)

# What runs a command (the plugin core, httpx, aiocometd, structlog's setup) is imported once
# the command line is parsed: `--version`, `--help` and a usage error need none of it.


def _split_simulate(argv: Sequence[str]) -> Sequence[str] | None:
    """The simulator's arguments when the command is ``simulate``, else None."""
    index = command_index(argv)
    if index is None or argv[index] != "simulate":
        return None
    return argv[index + 1 :]


def main(argv: list[str] | None = None) -> int:
    """Run ``gws-outbound``; return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    simulate = _split_simulate(arguments)
    if simulate is not None:
        from ..simulator import main as simulator_main

        return simulator_main(list(simulate), prog="gws-outbound simulate")
    ctx = _Context(sys.stdout, sys.stderr, sys.stdin, os.environ)
    try:
        _refuse_password_arguments(arguments)
    except _UsageError as error:
        named = next((item for item in arguments if not item.startswith("-")), None)
        if named in _OPERATION_COMMANDS or named in ("tail", "plugins"):
            ctx.prog = f"{PROG} {named}"
        ctx.error(str(error))
        return EXIT_USAGE
    parser = build_parser()
    refuse_unknown_command(parser, arguments)
    args, unrecognized = parser.parse_known_args(arguments)
    if unrecognized:
        refuse_unrecognized(parser, args.command, unrecognized)
    ctx.prog = f"{PROG} {args.command}"
    from ._environment import configure_logging, load_config

    configure_logging(args.log_level, json_logs=args.log_json)
    try:
        if args.command == "plugins":
            from ._plugins import _run_plugins

            return _run_plugins(args, ctx)
        if args.command == "new-plugin":
            from ._new_plugin import _run_new_plugin

            return _run_new_plugin(args, ctx)
        command = _OPERATION_COMMANDS.get(args.command)
        if command is not None:
            from ._arguments import _check_arguments

            requests = _check_arguments(command, args)  # usage errors before the prompt
            config = load_config(ctx.environ, stdin=ctx.stdin, base_url=args.base_url)
            import anyio

            from ._run import _run_operations

            return anyio.run(
                _run_operations, command, requests, args, ctx, config, backend="asyncio"
            )
        if args.command == "tail":
            config = load_config(ctx.environ, stdin=ctx.stdin, base_url=args.base_url)
            import anyio

            from ._tail import _run_tail

            return anyio.run(_run_tail, args, ctx, config, backend="asyncio")
    except _UsageError as error:
        ctx.error(str(error))
        return EXIT_USAGE
    except _Interrupted as error:
        ctx.note(str(error))
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        ctx.note("interrupted")
        return EXIT_INTERRUPTED
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse prevents this
