"""The options every `skeldir` command takes, before its name or after it.

`skeldir --data-dir X up` and `skeldir up --data-dir X` mean the same: the group and every
command and subgroup carry the global options, and a value given nearer the command replaces one
given before it. Without any, the settings come from the environment.
"""

from __future__ import annotations

from pathlib import Path

import click

from skeldir.base.config import Settings


def _use_data_dir(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.obj = Settings.from_env(data_dir=value)


def global_options() -> list[click.Option]:
    return [
        click.Option(
            ["--data-dir"],
            type=click.Path(path_type=Path),
            default=None,
            expose_value=False,
            callback=_use_data_dir,
            help="Where embedded services keep data [SKELDIR_DATA_DIR, else ./.skeldir].",
        )
    ]


def settings_of(ctx: click.Context) -> Settings:
    """The settings the global options chose (the environment's when none was given)."""
    if ctx.obj is None:
        ctx.obj = Settings.from_env()
    return ctx.obj


class CommandWithGlobalOptions(click.Command):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(global_options())


class GroupWithGlobalOptions(click.Group):
    """Commands and subgroups made from this group take the global options too."""

    command_class = CommandWithGlobalOptions
    group_class = type

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(global_options())
