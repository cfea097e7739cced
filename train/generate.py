"""python -m train.generate --workdir DIR --prompt TEXT [--max-new-tokens N] [--temperature T]
    [--top-k K] [--top-p P] [--repetition-penalty R] [--seed S] [--num-samples N]

Continues TEXT with the newest checkpoint of a language model trained in DIR, using the
decode cache (one prefill, then a compiled loop). Sampling follows Hugging Face: the
repetition penalty, then temperature (0: greedy), then top-k, then top-p.
"""
from __future__ import annotations

import re
import sys
import time

import jax

from lowrank_jax.generate import generate
from lowrank_jax.model import GPT
from lowrank_jax.training.config import MAX_SEED
from lowrank_jax.validation import INT32_MAX
from train.cli import Parser
from train.errors import UserError, exit_on_user_error
from train.pretrained import language_model, load_latest

PROGRAM = "python -m train.generate"
# lowrank_jax.generate checks these and names them as keywords; here they were flags.
SAMPLING_FLAGS = ("max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty")


def named_as_flags(message: str) -> str:
    """`top_k=-1 is not allowed...` as `--top-k=-1 is not allowed...`."""
    return re.sub(rf"\b({'|'.join(SAMPLING_FLAGS)})=",
                  lambda m: f"--{m[1].replace('_', '-')}=", message)


def parse_args(argv: list[str]):
    parser = Parser(prog=PROGRAM, doc=__doc__)
    parser.add_argument("--workdir", required=True, help="the folder a text training run wrote")
    parser.add_argument("--prompt", required=True, help="the text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8, help="0: greedy decoding")
    parser.add_argument("--top-k", type=int, default=0, help="0 keeps every token")
    parser.add_argument("--top-p", type=float, default=1.0, help="in (0, 1]; 1 keeps every token")
    parser.add_argument("--repetition-penalty", type=float, default=1.0, help="1: no penalty")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-samples", type=int, default=1)
    args = parser.parse_args(argv[1:])
    if not 1 <= args.num_samples <= INT32_MAX:
        raise UserError(f"--num-samples={args.num_samples} is not allowed; it must be from 1 "
                        f"to {INT32_MAX}.")
    if not 0 <= args.seed <= MAX_SEED:
        raise UserError(f"--seed={args.seed} is not allowed; it must be from 0 to {MAX_SEED}.")
    if not args.prompt:
        raise UserError("--prompt is empty; give at least one character to continue.")
    try:
        args.prompt.encode("utf-8")
    except UnicodeEncodeError:   # bytes the shell passed on that are not UTF-8
        raise UserError("--prompt is not UTF-8 text; give the prompt in UTF-8.") from None
    return args


def main(argv: list[str]) -> None:
    with exit_on_user_error(PROGRAM):
        args = parse_args(argv)
        run = language_model(load_latest(args.workdir, with_data=False), args.workdir)
        if run.tokenizer is None:
            raise UserError(f"workdir {args.workdir!r} holds a {run.config.task!r} model, not a "
                            "language model on text; pass the workdir of a text run.")
        start = time.perf_counter()
        try:
            prompt = [run.tokenizer.encode(args.prompt)] * args.num_samples
            out = generate(GPT(run.model_cfg), run.params, prompt,
                           max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                           top_k=args.top_k, top_p=args.top_p,
                           repetition_penalty=args.repetition_penalty,
                           rng=jax.random.key(args.seed))
            tokens, lengths = jax.device_get(out)
        except UserError as err:
            raise UserError(named_as_flags(str(err))) from None
        except MemoryError:
            raise UserError(f"--num-samples={args.num_samples} rows of --max-new-tokens="
                            f"{args.max_new_tokens} do not fit in memory; lower them.") from None
        seconds = time.perf_counter() - start
    for i, (row, n) in enumerate(zip(tokens, lengths, strict=True), 1):
        if args.num_samples > 1:
            print(f"--- sample {i} ---")
        print(args.prompt + run.tokenizer.decode(row[:n]))
    print(f"[{int(lengths.sum())} tokens in {seconds:.1f} s, compiling included; step "
          f"{run.step} of {args.workdir}]", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
