"""The `leadscore` command line: thin wrappers over importable functions."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="leadscore",
    help="Calibrated lead and deal scores from your CRM history.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """leadscore: generate, validate, build, train, promote, score, serve."""


if __name__ == "__main__":
    app()
