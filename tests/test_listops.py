"""The ListOps generator: every example evaluates to its label by an evaluator written
apart from the generator, lengths, depth, arguments and the operator mix follow the
recipe, the same seed gives the same data, and the CLI writes LRA's files."""
import collections
import csv
import statistics

import pytest

from lowrank_jax.tasks import listops
from train.listops import main

from helpers import assert_clean_error, run

COUNTS = {"train": 240, "val": 30, "test": 30}


@pytest.fixture(scope="module")
def data():
    return listops.splits(7, COUNTS)


def evaluate(source: str) -> tuple[int, int, list[int], collections.Counter]:
    """(value, depth, argument counts, operators) of a written example, read as nested
    lists with an explicit stack: "( [OP" opens a list, "] )" closes it."""
    tokens = source.split()
    stack, depth, arity, ops = [], 0, [], collections.Counter()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "(":
            operator = tokens[i + 1]
            ops[operator] += 1
            stack.append((operator, []))
            depth = max(depth, len(stack))
            i += 2
            continue
        if token == "]":
            assert tokens[i + 1] == ")"
            operator, args = stack.pop()
            arity.append(len(args))
            value = {"[MIN": lambda a: min(a), "[MAX": lambda a: max(a),
                     "[SM": lambda a: sum(a) % 10,
                     "[MED": lambda a: int(statistics.median(sorted(a)) // 1)}[operator](args)
            i += 2
        else:
            value = int(token)
            i += 1
        if not stack:
            assert i == len(tokens)
            return value, depth, arity, ops
        stack[-1][1].append(value)
    raise AssertionError("unclosed list")


def test_every_example_evaluates_to_its_label(data):
    for split in data.values():
        for source, label in split:
            assert evaluate(source)[0] == label, source


def test_lengths_depth_arguments_and_operators_follow_the_recipe(data):
    examples = [ex for split in data.values() for ex in split]
    ops = collections.Counter()
    for source, _ in examples:
        _, depth, arity, used = evaluate(source)
        assert 500 <= len(listops.tokenize(source)) <= 2000
        assert depth <= 10 and all(2 <= n <= 10 for n in arity)
        ops += used
    # Each operator is drawn with probability 1/4 (here about 47,000 of them).
    assert set(ops) == set(listops.OPERATORS)
    for count in ops.values():
        assert abs(count / sum(ops.values()) - 0.25) < 0.01
    assert len({source for source, _ in examples}) == len(examples)  # no repeats, across splits
    assert len({label for _, label in examples}) == 10


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data(data):
    assert listops.splits(7, COUNTS) == data
    assert not set(listops.splits(8, {"train": 30})["train"]) & set(data["train"])


def test_tokenize_drops_parentheses_and_keeps_the_closing_bracket():
    assert listops.tokenize("( [MAX 2 ( [MIN 4 7 ] ) 0 ] )") == [
        listops.TOKEN_IDS[s] for s in ("[MAX", "2", "[MIN", "4", "7", "]", "0", "]")]
    assert listops.TOKEN_IDS["<pad>"] == 0 and len(listops.VOCAB) == 16


def test_the_cli_writes_lra_files_and_never_replaces_them(tmp_path, capsys):
    out = tmp_path / "listops"
    main(["listops", "--out", str(out), "--num-train", "20", "--num-val", "5", "--num-test", "5",
          "--seed", "3"])
    assert "written: basic_train.tsv, basic_val.tsv, basic_test.tsv" in capsys.readouterr().out
    want = listops.splits(3, {"train": 20, "val": 5, "test": 5})
    for split, name in (("train", "basic_train.tsv"), ("val", "basic_val.tsv"),
                        ("test", "basic_test.tsv")):
        with open(out / name, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        assert [(r["Source"], int(r["Target"])) for r in rows] == want[split]
    before = (out / "basic_val.tsv").read_bytes()
    result = run("train.listops", "--out", str(out), "--num-train", "1")
    assert_clean_error(result, f"--out '{out}' already holds basic_train.tsv")
    assert (out / "basic_val.tsv").read_bytes() == before
    assert_clean_error(run("train.listops", "--out", str(tmp_path / "x"), "--num-val", "-1"),
                       "--num-val=-1 is not allowed; give a count of 0 or more.")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args, message", [
    (["--lengths", "1,1"], "--lengths=1,1 is not allowed; give the shortest and the longest "
                           "length, 4 <= MIN <= MAX, as MIN,MAX."),
    # 4 operators x 10 x 10 values: 400 lists of 4 symbols, no more.
    (["--lengths", "4,4"], "lengths 4-4 hold too few distinct ListOps examples: 400 found; "
                           "widen the lengths or ask for fewer examples."),
    (["--out", "{file}"], "--out '{file}' is not allowed; give a folder (new or holding no "
                          "ListOps files)."),
    # Found before the examples are drawn, not when they are written.
    (["--out", "{file}/x"], "--out '{file}/x' cannot be made a folder ({file} is not a folder "
                            "you can write to); pass a folder you can write to."),
])
def test_the_cli_refuses_what_it_cannot_write_in_one_sentence(tmp_path, capsys, args, message):
    taken = tmp_path / "a_file"
    taken.write_text("mine")
    args = [a.format(file=taken) for a in args]
    with pytest.raises(SystemExit) as stop:
        main(["listops", "--out", str(tmp_path / "out"), "--num-train", "1000", *args])
    assert stop.value.code == 2 and not (tmp_path / "out").exists()
    assert capsys.readouterr().err.strip().endswith(message.format(file=taken))
    assert taken.read_text() == "mine"
