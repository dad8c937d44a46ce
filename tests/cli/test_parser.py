"""The command line itself: every command described and every option explained, the
stores' defaults stated as ``stores/defaults.py`` applies them, ``--storage`` only where
bodies are read or written, and a bad argument one line on stderr (issue 18)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
from console import needs_script, run

from majordomo_log.cli.main import build_parser
from majordomo_log.stores.defaults import BODIES_FOLDER, DB_ENV_VAR, DEFAULT_DB, STORAGE_ENV_VAR


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser in the tree, with the words that reach it (the top one: ())."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, (*path, name))


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        action.option_strings[0] if action.option_strings else action.dest: action
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction)
    }


def test_every_command_has_a_description_and_every_option_help() -> None:
    tree = list(commands(build_parser()))
    assert len(tree) > 15
    undescribed = [" ".join(path) for path, parser in tree if not parser.description]
    unexplained = [
        f"{' '.join(path) or 'majordomo-log'} {name}"
        for path, parser in tree
        for name, action in options(parser).items()
        if not action.help or action.help == argparse.SUPPRESS
    ]
    assert undescribed == [] and unexplained == []


def test_each_description_is_what_help_shows() -> None:
    for path, parser in commands(build_parser()):
        if path:
            assert parser.description is not None
            assert parser.description.split()[0] in parser.format_help(), path


def test_storage_is_offered_only_where_bodies_are_read_or_written() -> None:
    offered = {
        " ".join(path)
        for path, parser in commands(build_parser())
        if "--storage" in options(parser)
    }
    assert offered == {"show", "ui", "spool replay"}


def test_the_help_states_the_default_rule() -> None:
    for path, parser in commands(build_parser()):
        found = options(parser)
        if "--db" in found:
            assert f"(default: ${DB_ENV_VAR}, else {DEFAULT_DB})" in str(found["--db"].help), path
        if "--storage" in found:
            assert (
                f"(default: ${STORAGE_ENV_VAR}, else {BODIES_FOLDER} beside the SQLite file)"
                in str(found["--storage"].help)
            ), path


def test_the_defaults_follow_the_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from majordomo_log.cli.args import resolve_stores

    monkeypatch.delenv(DB_ENV_VAR, raising=False)
    monkeypatch.delenv(STORAGE_ENV_VAR, raising=False)
    parser = build_parser()

    def stores(*argv: str) -> tuple[str, str]:
        args = parser.parse_args(["show", "x", *argv])
        resolve_stores(args)
        return args.db, args.storage

    assert stores() == ("sqlite:///llm_logs.db", "file://request_logs")
    assert stores("--db", "demo-output/llm_logs.db") == (
        "sqlite:///demo-output/llm_logs.db",
        "file://demo-output/request_logs",
    )
    assert stores("--db", f"sqlite:///{tmp_path}/a.db")[1] == f"file://{tmp_path}/request_logs"
    assert stores("--db", "postgresql://u@h/db")[1] == "file://request_logs"
    monkeypatch.setenv(DB_ENV_VAR, "logs/x.db")
    assert stores() == ("sqlite:///logs/x.db", "file://logs/request_logs")
    monkeypatch.setenv(STORAGE_ENV_VAR, "s3://bucket/bodies")
    assert stores("--db", "y.db") == ("sqlite:///y.db", "s3://bucket/bodies")
    assert stores("--storage", "here") == ("sqlite:///logs/x.db", "file://here")


@needs_script
@pytest.mark.parametrize(
    ("argv", "starts"),
    [
        (["report", "--since", "1y"], "majordomo-log report: error: argument --since: '1y' is"),
        (["tail", "-n", "ten"], "majordomo-log tail: error: argument -n: 'ten' is not"),
        (["tail", "--format", "xml"], "majordomo-log tail: error: argument --format: invalid"),
        (["report", "--storage", "x"], "majordomo-log: error: unrecognized arguments: --storage"),
        (["budgets"], "majordomo-log budgets: error: the following arguments are required"),
        ([], "majordomo-log: error: the following arguments are required: COMMAND"),
        (["nope"], "majordomo-log: error: argument COMMAND: invalid choice: 'nope'"),
        (["show"], "majordomo-log show: error: the following arguments are required: request_id"),
    ],
)
def test_a_bad_argument_is_one_line_through_the_console_script(
    argv: list[str], starts: str
) -> None:
    done = run(*argv)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(starts), done.stderr
    command = starts.split(":")[0]
    assert done.stderr.endswith(f" ({command} --help)\n")


@needs_script
def test_help_shows_each_description_through_the_console_script() -> None:
    done = run("tail", "--help")
    assert done.returncode == 0 and "The latest calls, newest first" in done.stdout
    assert "calls before this time" in done.stdout  # --until explained
    assert "--storage" not in done.stdout


@pytest.mark.parametrize("command", [["report"], ["tail"], ["reprice", "--dry-run"]])
def test_until_before_since_is_an_error_not_an_empty_result(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from majordomo_log.cli import main

    db = str(tmp_path / "missing.db")  # the window is checked before the log is opened
    assert main([*command, "--db", db, "--since", "7d", "--until", "14d"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--until" in err and "is not after --since" in err
    assert main([*command, "--db", db, "--since", "14d", "--until", "7d"]) == 2
    assert "no database at" in capsys.readouterr().err  # a real window passes the check
