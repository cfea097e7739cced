"""python -m train.suite_merge --out DIR RESULTS.json RESULTS.json [...]

Merges the results of several `python -m train.suite` runs of one suite and --size (a grid
split by --lengths, variants run with different --set, the same runs on another day) into
one quality_<suite>.json, .md and .png in DIR, as one suite run would have written them. A
later file's row replaces an earlier file's row of the same run (variant, length, pairs, seed
and the suite's --set items and --steps: rows of other settings stay apart, their labels
naming them); the tables name every command and machine the rows came from.
"""
from __future__ import annotations

import json
import shlex
import sys

from train.cli import Parser, make_output_folder
from train.errors import UserError, exit_on_user_error
from train import suite, suite_report

PROGRAM = "python -m train.suite_merge"
RUN_IDENTITY = (*suite_report.IDENTITY, "seed")
SUITES = tuple(f"quality_{name}" for name in suite_report.REPORTS)


def read_result(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{path} is not a readable suite results file "
                        f"({type(err).__name__}); give the quality_<suite>.json that "
                        "python -m train.suite wrote.") from None
    if not (isinstance(result, dict) and isinstance(result.get("results"), list)
            and {"benchmark", "command", "machine"} <= result.keys()):
        raise UserError(f"{path} is not a suite results file: it lacks benchmark, command, "
                        "machine or a results list.")
    if result["benchmark"] not in SUITES:
        raise UserError(f"{path} holds benchmark {result['benchmark']!r}; merge the results "
                        f"of a suite: {', '.join(SUITES)}.")
    return with_settings_named(result)


def with_settings_named(result: dict) -> dict:
    """Rows written before suites named their settings get them from the suite's command,
    so they stay apart from rows of other settings. A merged file's rows stay as they are:
    its several commands do not say which row came from which."""
    command = result["command"]
    if isinstance(command, list) or all("settings" in row for row in result["results"]):
        return result
    try:
        args = suite.build_parser().parse_args(
            shlex.split(command)[len(suite.PROGRAM.split()):])
    except (UserError, ValueError):
        return result   # not a suite command line: nothing to name them by
    named = suite.settings_name(args)
    rows = [row if "settings" in row or not named else {**row, "settings": named}
            for row in result["results"]]
    return {**result, "results": rows}


def check_one_kind(results: list[dict], field: str, what: str) -> None:
    """One table compares runs of one suite at one --size: its heading names one of each."""
    kinds = sorted({str(r.get(field)) for r in results})
    if len(kinds) > 1:
        raise UserError(f"the files hold different {what} ({', '.join(kinds)}); merge the "
                        f"results of one suite at one size at a time.")


def merge(results: list[dict]) -> dict:
    """One result of `results` (one benchmark): rows in the order first met, a later row
    replacing an earlier one of the same run; the commands and machines of them all."""
    rows: dict[tuple, dict] = {}
    for result in results:
        for row in result["results"]:
            rows[tuple(row.get(k) for k in RUN_IDENTITY)] = row
    commands = [c for r in results for c in suite_report.commands_of(r)]
    machine = {key: ", ".join(dict.fromkeys(str(r["machine"].get(key)) for r in results))
               for key in ("device", "backend", "jax", "date")}
    return {**results[0], "command": list(dict.fromkeys(commands)), "machine": machine,
            "results": list(rows.values())}


def parse_args(argv: list[str]):
    parser = Parser(prog=PROGRAM, doc=__doc__)
    parser.add_argument("--out", required=True,
                        help="the folder for the merged quality_<suite>.* files")
    parser.add_argument("results", nargs="+", help="quality_<suite>.json files to merge")
    return parser.parse_args(argv[1:])


def main(argv: list[str]) -> None:
    with exit_on_user_error(PROGRAM):
        args = parse_args(argv)
        results = [read_result(path) for path in args.results]
        check_one_kind(results, "benchmark", "suites")
        check_one_kind(results, "size", "sizes")
        make_output_folder(args.out)
    print(suite_report.write(merge(results), args.out))


if __name__ == "__main__":
    main(sys.argv)
