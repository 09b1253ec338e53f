"""Mutation fuzzer for the compiler: no input may produce a traceback.

Takes the golden programs and examples as seeds, mutates them at the level of
characters and tokens (delete, duplicate, swap, replace with a token from
another program, insert a random byte), and runs the whole pipeline up to
and including codegen on each mutant. A CompileError is a fine answer; any
other exception is a compiler bug, reported with the mutant.

    python -m tools.fuzz --count 20000 --seed 1 [--save DIR]
"""
from __future__ import annotations

import argparse
import pathlib
import random
import re
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
TOKEN = re.compile(r"\s+|//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'"
                   r"|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+"
                   r"|::|->|<<=|>>=|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^]=|.", re.S)
EXTRA_TOKENS = ["vector<", ">>", "job<int>", "remote", "struct", "string",
                "9223372036854775808", "1e999", "'\\x4'", "\"\\q\"", "get(",
                "::", "->", "(", ")", "{", "}", "[", "]", ";", ",", "@",
                "\u00e9", "while (true)", "return", "break;", "-", "!",
                "~", "&", "|", "^", "<<", "<<=", ">>=", "1 << 64"]


def seeds() -> list[str]:
    paths = sorted((REPO / "tests" / "golden").rglob("*.ms"))
    paths += sorted((REPO / "examples").glob("*.ms"))
    return [p.read_text(encoding="utf-8", errors="replace") for p in paths]


def mutate(text: str, pool: list[str], rng: random.Random) -> str:
    tokens = TOKEN.findall(text) or [""]
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        i = rng.randrange(len(tokens))
        op = rng.randrange(6)
        if op == 0:
            del tokens[i]
        elif op == 1:
            tokens.insert(i, tokens[i])
        elif op == 2:
            j = rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif op == 3:
            tokens[i] = rng.choice(pool)
        elif op == 4:
            tokens.insert(i, rng.choice(EXTRA_TOKENS))
        else:
            tokens.insert(i, chr(rng.randrange(1, 128)))
        if not tokens:
            tokens = [""]
    return "".join(tokens)


def compile_once(text: str):
    """Run the pipeline on `text`; return None, or the unexpected exception."""
    from compiler.errors import CompileError
    from compiler.pipeline import PassFailure, Source, run_pipeline
    try:
        run_pipeline(Source("fuzz.ms", text))
    except CompileError:
        return None
    except PassFailure as e:
        return e
    except Exception as e:  # noqa: BLE001 - anything else is the bug we hunt
        return e
    return None


def fuzz(count: int, seed: int):
    """Yield (mutant, exception) for each mutant the compiler mishandles."""
    rng = random.Random(seed)
    corpus = seeds()
    pool = [t for text in corpus for t in TOKEN.findall(text) if not t.isspace()]
    for _ in range(count):
        mutant = mutate(rng.choice(corpus), pool, rng)
        error = compile_once(mutant)
        if error is not None:
            yield mutant, error


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--save", type=pathlib.Path,
                    help="write each failing mutant here")
    args = ap.parse_args(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
    failures = 0
    for mutant, error in fuzz(args.count, args.seed):
        failures += 1
        print(f"--- {type(error).__name__}: {error}")
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            (args.save / f"crash-{failures}.ms").write_text(mutant)
    print(f"{args.count} mutants, {failures} compiler bugs")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
