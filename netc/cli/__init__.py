"""The `netc` command line (click).

Subcommands live in their own modules and are imported only when invoked, so `netc check`
starts fast and never imports torch. Every NetcError becomes compiler-style diagnostics on
stderr and exit status 2; nothing else escapes as a traceback unless NETC_DEBUG is set.
"""
from __future__ import annotations

import importlib
import os
import signal
import sys

import click

from netc.errors import NetcError

COMMANDS = {
    "check": ("netc.cli.check", "check", "Validate a spec; print the shape trace and totals."),
    "schema": ("netc.cli.schema", "schema", "Print the JSON Schema of the spec language."),
    "build": ("netc.cli.build", "build", "Build a spec as a torch module: confirm shapes, initialise, summarise, --save."),
    "table": ("netc.cli.table", "table", "Cost table: params, MACs, shapes, memory, receptive field per layer and block."),
    "render": ("netc.cli.render", "render", "Draw the network: DOT, SVG, PNG, PDF or a self-contained HTML report."),
    "list": ("netc.cli.list", "list_", "List the bundled specs with their params, MACs and description."),
    "bench": ("netc.cli.bench", "bench", "Measure the built model's images/s, latency and achieved FLOP/s on this machine."),
    "diff": ("netc.cli.diff", "diff", "Compare two specs (or parameter sets) block by block: params, MACs, shapes, memory, RF."),
    "lint": ("netc.cli.lint", "lint", "Check specs against the papers' design rules; findings at the spec's lines (text, JSON, SARIF)."),
    "paths": ("netc.cli.paths", "paths", "Count input-output paths and their lengths in blocks and layers (Veit et al. 2016)."),
    "convert-weights": ("netc.cli.convert", "convert_weights", "Convert a state_dict between corresponding specs (FC <-> conv)."),
    "codegen": ("netc.cli.codegen", "codegen", "Write the spec as standalone, readable PyTorch source (generated/<name>.py)."),
    "import": ("netc.cli.import_", "import_", "Import an nn.Module (torchvision, timm, a .py file) as a verified spec."),
    "export": ("netc.cli.export", "export", "Export to ONNX (verified with onnxruntime) or torch.export, after a hazard report."),
    "cache": ("netc.cli.cache", "cache", "List or clear the compile cache of build --compile (bounded, checked)."),
    "verify": ("netc.cli.verify", "verify", "Check a spec against a model (torchvision, timm, a .py file, a state_dict): exit 0 or 1."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def resolve_command(self, ctx, args):
        if args and args[0] not in COMMANDS and not args[0].startswith("-"):
            from netc.errors import did_you_mean

            ctx.fail(f"no such command '{args[0]}'; " + (did_you_mean(args[0], COMMANDS) or "see 'netc --help'"))
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:  # the group's own options: `netc --bad`
            raise escaped(exc) from None

    def invoke(self, ctx):
        from netc.cli.failures import environment_failure, flush_stdout, nul_in_path, stdout_failure

        try:
            result = super().invoke(ctx)
            flush_stdout()
            return result
        except NetcError as exc:
            report(exc)
            ctx.exit(2)
        except OSError as exc:
            if (failure := stdout_failure(exc) or environment_failure(exc)) is not None:
                report(failure)
                ctx.exit(2)
            if exc.filename is None or os.environ.get("NETC_DEBUG"):
                raise
            from netc.api.reports import io_error

            report(io_error(exc.filename, exc))  # a path the user gave that cannot be written
            ctx.exit(2)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated): temp files are already removed
            terminated = isinstance(exc, Terminated)
            click.echo("terminated" if terminated else "interrupted", err=True)
            ctx.exit(128 + (signal.SIGTERM if terminated else signal.SIGINT))
        except click.ClickException as exc:
            raise escaped(exc) from None
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug in netc, not in the spec
            if os.environ.get("NETC_DEBUG"):
                raise
            if (failure := environment_failure(exc) or nul_in_path(exc)) is not None:
                report(failure)
                ctx.exit(2)
            from netc.errors import printable

            click.echo(f"netc: internal error: {type(exc).__name__}: {printable(str(exc))}\n"
                       "  this is a bug in netc; rerun with NETC_DEBUG=1 for a traceback", err=True)
            ctx.exit(70)


def escaped(exc: click.ClickException) -> click.ClickException:
    """Click's usage errors echo what was typed (`No such option: --x`, `'ab' is not a valid
    integer`): the message goes through the diagnostics' escaper before click shows it."""
    from netc.errors import printable

    exc.message = printable(exc.message)
    return exc


MAX_SHOWN = 100  # a hostile spec can have thousands of errors; the first ones are what the user fixes


def report(exc: NetcError) -> None:
    for d in exc.diagnostics[:MAX_SHOWN]:
        click.echo(d.format(), err=True)
    n = len(exc.diagnostics)
    if n > MAX_SHOWN:
        click.echo(f"… {n - MAX_SHOWN} more not shown", err=True)
    if n > 1:
        click.echo(f"{n} errors", err=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: unwinding removes half-written temp files; exit 143."""


def _terminate(signum, frame):
    raise Terminated()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netc")
def main():
    """netc: compile declarative network specs into PyTorch modules, code, diagrams and tables."""
    try:
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (netc called from a thread): leave signals alone
        pass


def run() -> None:
    sys.exit(main())
