"""Editor support: the VS Code grammar (editors/vscode) tokenized by the
libraries VS Code itself uses, and the Pygments lexer (compiler/highlight.py).

Both run on the examples, every golden program the compiler's lexer accepts,
and tests/editors/sample.ms, which holds every construct of SPEC v1.1 once at
least. Three kinds of check:

- the sample's keywords, types, builtins, literals, escapes, comments,
  operators and declared names get the scopes / token types expected here;
- every token of compiler/syntax/lexical.py (the compiler's own tokenizer) starts a
  highlighter token of the matching kind, and what lies between its tokens
  is whitespace or comment;
- nothing is left unscoped, marked invalid or an Error token in a program
  the compiler lexes.

The grammar tests install vscode-textmate and vscode-oniguruma with npm into
$XDG_CACHE_HOME/ms-lang/npm (~/.cache by default) the first time, and skip,
saying why, on a machine without node and npm.
"""
import fcntl
import importlib.metadata
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import (Comment, Error, Keyword, Name, Number, Operator,
                            Punctuation, String)

from compiler.syntax import lexical
from compiler.highlight import MsLexer
from harness import REPO

GRAMMAR = REPO / "editors" / "vscode" / "syntaxes" / "ms.tmLanguage.json"
TOKENIZE_JS = REPO / "tests" / "editors" / "tokenize.js"
SAMPLE = REPO / "tests" / "editors" / "sample.ms"
NPM_PACKAGES = ("vscode-textmate@9.3.2", "vscode-oniguruma@2.0.1")

# SPEC v1.1 section 2.
KEYWORDS = frozenset("""
    master job remote struct vector map int double bool char string void if
    else while for return break continue true false running finished failed
    cancelled jobstate""".split())
BUILTINS = tuple("""
    print len str get state cancel sqrt exp log sin cos tan atan2 pow floor
    ceil abs min max args read_file write_file list_dir read_stdin eprint
    split join find slice sort repeat wait_any wait error fail slaves clock
    sleep has remove keys values""".split())


def _lexes(path):
    return lexical.tokenize(path.read_text()).error is None


def _kind(ct):
    """The kind the highlighters should give a compiler token: a word that
    SPEC v1.1 makes a keyword but the compiler's lexer still reads as a
    name (`map`, until maps are in) is a keyword to them already."""
    if ct.kind == "name" and ct.text in KEYWORDS - lexical.KEYWORDS:
        return "keyword"
    return ct.kind


EXAMPLES = sorted((REPO / "examples").glob("*.ms"))
GOLDEN = sorted((REPO / "tests" / "golden").rglob("*.ms"))
# Programs the compiler's lexer accepts (a fail- program with a lexical
# error is left out), and the sample, which may use v1.1 words before the
# compiler's lexer knows them (see _kind).
PROGRAMS = EXAMPLES + [p for p in GOLDEN if _lexes(p)] + [SAMPLE]

# SPEC 12.4's operators: the compiler's lexer knows them, so the cross-checks
# against it must meet each (in the sample and the golden programs).
BIT_OPERATORS = frozenset("& | ^ ~ << >> &= |= ^= <<= >>=".split())

# The sample's code (outside comments and strings): text -> (TextMate scope,
# Pygments token type). Every occurrence of the text must have them.
CONTROL = "if else while for return break continue"
EXPECT = {
    **{k: ("keyword.control.ms", Keyword) for k in CONTROL.split()},
    "remote": ("keyword.control.remote.ms", Keyword),
    "master": ("keyword.other.master.ms", Keyword.Declaration),
    "struct": ("storage.type.struct.ms", Keyword.Declaration),
    "job": ("storage", Keyword),  # a modifier before a type, a type before <
    **{t: ("storage.type.ms", Keyword.Type) for t in
       "int double bool char string void jobstate vector map".split()},
    "true": ("constant.language.boolean.ms", Keyword.Constant),
    "false": ("constant.language.boolean.ms", Keyword.Constant),
    **{s: ("constant.language.jobstate.ms", Keyword.Constant) for s in
       "running finished failed cancelled".split()},
    **{b: ("support.function.builtin.ms", Name.Builtin) for b in BUILTINS},
    "Point": ("entity.name.type.struct.ms", Name.Class),
    "Tree": ("entity.name.type.struct.ms", Name.Class),
    **{n: ("constant.numeric.integer.decimal.ms", Number.Integer) for n in
       ("0077", "9223372036854775807", "3")},
    **{d: ("constant.numeric.float.ms", Number.Float) for d in
       ("1.5", "1.", ".5", "2e10", "1.5e-3", "3E+2", "0.0")},
    **{op: ("keyword.operator", Operator) for op in
       "& | ^ ~ << >> :: -> &= |= ^= <<= >>= += -= *= /= %= && || ! == != "
       "<= >= < > + - * / % =".split()},
    **{p: ("punctuation", Punctuation) for p in "; , ( ) [ ] { }".split()},
}
# Functions the sample declares: the declaration names them (a call is not a
# declaration: `remote work(...)` is variable.function in the grammar).
DECLARED = ("twice half odd first hello nothing idle origin ints index grid "
            "work quiet").split()
ESCAPES = ("\\t", "\\n", "\\r", "\\0", "\\\\", "\\'", '\\"', "\\x41", "\\xff")


# ------------------------------------------------------------- TextMate

def _cache_root():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "ms-lang" / "npm"


def _npm_installed(root, spec):
    name, version = spec.rsplit("@", 1)
    manifest = root / "node_modules" / name / "package.json"
    try:
        return json.loads(manifest.read_text())["version"] == version
    except (OSError, ValueError, KeyError):
        return False


@pytest.fixture(scope="module")
def node_modules():
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("the VS Code grammar tests need node and npm on PATH "
                    f"(node: {node or 'not found'}, npm: {npm or 'not found'})")
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:  # one installer at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all(_npm_installed(root, p) for p in NPM_PACKAGES):
            done = subprocess.run(
                [npm, "install", "--prefix", str(root), "--no-audit",
                 "--no-fund", "--loglevel=error", *NPM_PACKAGES],
                capture_output=True, text=True, timeout=300,
                env={**os.environ, "npm_config_update_notifier": "false"})
            assert done.returncode == 0, f"npm install failed:\n{done.stderr}"
    return root / "node_modules"


class Tok:
    """One highlighter token: its text, where it starts in the file and its
    scopes (TextMate: a list of names; Pygments: one token type)."""

    def __init__(self, start, text, kind):
        self.start, self.text, self.kind = start, text, kind

    @property
    def end(self):
        return self.start + len(self.text)

    def __repr__(self):
        return f"{self.text!r}@{self.start}:{self.kind}"


@pytest.fixture(scope="module")
def textmate(node_modules):
    """{path: [Tok]} for every program, scopes as lists of names."""
    done = subprocess.run(
        ["node", str(TOKENIZE_JS), str(GRAMMAR), *map(str, PROGRAMS)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "NODE_PATH": str(node_modules)})
    assert done.returncode == 0, done.stderr
    result = {}
    for path, lines in json.loads(done.stdout).items():
        toks, offset = [], 0
        for line in lines:
            for t in line:
                toks.append(Tok(offset, t["text"], t["scopes"]))
                offset += len(t["text"])
            offset += 1  # the newline
        result[pathlib.Path(path)] = toks
    return result


def _has(tok, scope):
    return any(s == scope or s.startswith(scope + ".") for s in tok.kind)


def _tm_code(tok):
    return not (_has(tok, "comment") or _has(tok, "string"))


def _at(toks, offset):
    """The token holding the character at `offset`."""
    for t in toks:
        if t.start <= offset < t.end:
            return t
    raise AssertionError(f"no token at offset {offset}")


def test_the_sample_covers_spec():
    """The sample holds every keyword and builtin of SPEC v1.1, so the checks
    below cover them; the compiler's keywords are SPEC's."""
    text = SAMPLE.read_text()
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
    assert KEYWORDS <= words, f"sample.ms lacks {sorted(KEYWORDS - words)}"
    missing = [b for b in BUILTINS if f"{b}(" not in text]
    assert not missing, f"sample.ms calls no {missing}"
    assert lexical.KEYWORDS <= KEYWORDS, "SPEC's keywords changed: update here"


def _unexpected(code, which, matches, generic_bracket):
    """What in the sample's `code` tokens differs from EXPECT, whose entry
    `which` (0: TextMate, 1: Pygments) `matches(token, expected)` checks.
    `<` and `>` may also be the brackets of a generic type."""
    problems = []
    for text, expected in EXPECT.items():
        found = [t for t in code if t.text == text]
        if not found:
            problems.append(f"{text!r} not in the sample's code")
        for t in found:
            if not (matches(t, expected[which])
                    or text in "<>" and generic_bracket(t)):
                problems.append(f"{t}: expected {expected[which]}")
    return problems


def test_textmate_scopes_of_the_sample(textmate):
    toks = textmate[SAMPLE]
    code = [t for t in toks if _tm_code(t)]
    problems = _unexpected(
        code, 0, lambda t, scope: _has(t, scope),
        lambda t: _has(t, "punctuation.definition.generic"))
    for name in DECLARED:
        first = next(t for t in code if t.text == name)
        if not _has(first, "entity.name.function"):
            problems.append(f"declaration {first}: expected entity.name.function")
    call = [t for t in code if t.text == "work"][-1]
    if _has(call, "entity.name.function") or not _has(call, "variable.function"):
        problems.append(f"call {call}: expected variable.function")
    assert not problems, "\n".join(problems)


def test_textmate_strings_chars_escapes_and_comments(textmate):
    toks = textmate[SAMPLE]
    for esc in ESCAPES:
        hits = [t for t in toks if t.text == esc]
        assert hits and all(_has(t, "constant.character.escape.ms")
                            and _has(t, "string.quoted") for t in hits), (esc, hits)
    assert any(t.text == "\\t" and _has(t, "string.quoted.double.ms") for t in toks)
    assert any(t.text == "\\'" and _has(t, "string.quoted.single.ms") for t in toks)
    assert all(_has(t, "string.quoted.double.ms")
               for t in toks if t.text in ('"', "tab", "here", "hi"))
    assert all(_has(t, "string.quoted.single.ms") for t in toks if t.text == "'")
    line = [t for t in toks if t.text.startswith(" Every lexical construct")]
    assert line and _has(line[0], "comment.line.double-slash.ms")
    block = [t for t in toks if "not a string" in t.text or "A block" in t.text]
    assert len(block) == 2 and all(_has(t, "comment.block.ms") for t in block)
    # a keyword inside a comment is comment, not keyword
    assert not any(_has(t, "keyword") for t in toks if t.text == "while" and
                   t.start < SAMPLE.read_text().index("struct Point"))


def test_textmate_agrees_with_the_compilers_lexer(textmate):
    """Each token compiler/syntax/lexical.py finds starts a grammar token of its
    kind; the text between its tokens is whitespace or comment."""
    wanted = {
        "keyword": ("keyword", "storage", "constant.language"),
        "name": ("variable", "entity.name", "support.function"),
        "int": ("constant.numeric.integer",),
        "double": ("constant.numeric.float",),
        "string": ("string.quoted.double",),
        "char": ("string.quoted.single",),
        "punct": ("keyword.operator", "punctuation"),
    }
    problems, checked, puncts = [], 0, set()
    for path in PROGRAMS:
        lexed = lexical.tokenize(path.read_text())
        if lexed.error is not None:  # a v1.1 token the compiler lacks
            continue
        checked += 1
        toks = textmate[path]
        starts = set()
        for ct in lexed.tokens:
            puncts.add(ct.text if ct.kind == "punct" else None)
            t = _at(toks, ct.start)
            starts.update(range(ct.start, ct.end))
            kind = _kind(ct)
            if not any(_has(t, s) for s in wanted[kind]):
                problems.append(f"{path.name}: {kind} {ct.text!r} is {t}")
            elif kind in ("keyword", "name", "int", "double") and t.text != ct.text:
                problems.append(f"{path.name}: {ct.kind} {ct.text!r} is {t}")
        for t in toks:
            if t.text.strip() and t.start not in starts and not _has(t, "comment"):
                problems.append(f"{path.name}: {t} between tokens, not a comment")
    assert checked > len(EXAMPLES)
    assert BIT_OPERATORS <= puncts, "the bit operators went unchecked"
    assert not problems, "\n".join(problems[:30])


def test_textmate_leaves_nothing_unscoped_or_invalid(textmate):
    problems = []
    for path in PROGRAMS:
        for t in textmate[path]:
            if t.text.strip() and len(t.kind) < 2:
                problems.append(f"{path.name}: {t} has no scope")
            if any(s.startswith("invalid.") for s in t.kind):
                problems.append(f"{path.name}: {t} marked invalid")
            if _tm_code(t) and t.text in KEYWORDS and not any(
                    _has(t, s) for s in ("keyword", "storage", "constant.language")):
                problems.append(f"{path.name}: keyword {t}")
    assert not problems, "\n".join(problems[:30])


def test_textmate_marks_what_the_compiler_rejects(textmate, node_modules,
                                                   tmp_path):
    bad = tmp_path / "bad.ms"
    bad.write_text('master { string s = "a\\qb"; int n = 12ab; }\n')
    done = subprocess.run(["node", str(TOKENIZE_JS), str(GRAMMAR), str(bad)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NODE_PATH": str(node_modules)})
    assert done.returncode == 0, done.stderr
    toks = [t for line in json.loads(done.stdout)[str(bad)] for t in line]
    invalid = [t["text"] for t in toks
               if any(s.startswith("invalid.illegal") for s in t["scopes"])]
    assert invalid == ["\\q", "12ab"]


def test_vscode_manifest():
    ext = REPO / "editors" / "vscode"
    manifest = json.loads((ext / "package.json").read_text())
    assert manifest["engines"]["vscode"]
    (lang,) = manifest["contributes"]["languages"]
    assert lang["id"] == "ms" and lang["extensions"] == [".ms"]
    assert (ext / lang["configuration"]).is_file()
    (grammar,) = manifest["contributes"]["grammars"]
    assert grammar["language"] == "ms" and grammar["scopeName"] == "source.ms"
    assert (ext / grammar["path"]).resolve() == GRAMMAR
    assert json.loads(GRAMMAR.read_text())["scopeName"] == "source.ms"
    config = json.loads((ext / lang["configuration"]).read_text())
    assert config["comments"] == {"lineComment": "//",
                                  "blockComment": ["/*", "*/"]}
    pairs = {(p["open"], p["close"]) for p in config["autoClosingPairs"]}
    assert {("{", "}"), ("(", ")"), ("[", "]"), ('"', '"'), ("'", "'")} <= pairs
    assert ["(", ")"] in config["brackets"]
    assert ['"', '"'] in config["surroundingPairs"]


# ------------------------------------------------------------- Pygments

def _pygments(path):
    return [Tok(i, v, tt) for i, tt, v in
            MsLexer().get_tokens_unprocessed(path.read_text())]


def test_pygments_token_types_of_the_sample():
    toks = _pygments(SAMPLE)
    code = [t for t in toks if t.kind not in Comment and t.kind not in String]
    problems = _unexpected(code, 1, lambda t, ttype: t.kind in ttype,
                           lambda t: t.kind is Punctuation)
    for name in DECLARED:
        first = next(t for t in code if t.text == name)
        if first.kind is not Name.Function:
            problems.append(f"declaration {first}: expected Name.Function")
    for esc in ESCAPES:
        if not any(t.text == esc and t.kind is String.Escape for t in toks):
            problems.append(f"escape {esc!r}: expected String.Escape")
    if not any(t.text == "\\'" for t in toks if t.kind is String.Escape):
        problems.append("the char literal's escape")
    comments = [t for t in toks if t.kind in Comment]
    if not (any(t.kind is Comment.Single for t in comments)
            and any(t.kind is Comment.Multiline and "int while" in t.text
                    for t in comments)):
        problems.append(f"comments: {comments}")
    assert not problems, "\n".join(problems)


def test_pygments_agrees_with_the_compilers_lexer():
    wanted = {"keyword": Keyword, "name": Name, "int": Number.Integer,
              "double": Number.Float, "string": String.Double,
              "char": String.Char}
    problems = []
    puncts = set()
    for path in PROGRAMS:
        lexed = lexical.tokenize(path.read_text())
        if lexed.error is not None:
            continue
        toks = _pygments(path)
        for ct in lexed.tokens:
            puncts.add(ct.text if ct.kind == "punct" else None)
            t = _at(toks, ct.start)
            kind = _kind(ct)
            if kind == "punct":
                ok = t.kind in Operator or t.kind in Punctuation
            else:
                ok = t.kind in wanted[kind] and (
                    kind in ("string", "char") or t.text == ct.text)
            if not ok:
                problems.append(f"{path.name}: {kind} {ct.text!r} is {t}")
    assert BIT_OPERATORS <= puncts, "the bit operators went unchecked"
    assert not problems, "\n".join(problems[:30])


def test_pygments_has_no_error_tokens_on_programs_that_lex():
    problems = [f"{p.name}: {t}" for p in PROGRAMS for t in _pygments(p)
                if t.kind in Error]
    assert not problems, "\n".join(problems[:30])
    bad = [v for tt, v in MsLexer().get_tokens('string s = "a\\qb"; @')
           if tt in Error]
    assert bad == ["\\q", "@"]


def test_pygments_finds_the_installed_lexer():
    points = importlib.metadata.entry_points(group="pygments.lexers")
    assert "compiler.highlight:MsLexer" in {p.value for p in points}, (
        "the ms-lang package is not installed with its entry points: run make")
    assert type(get_lexer_by_name("mslang")).__module__ == "compiler.highlight"
    code = (REPO / "examples" / "gcd.ms").read_text()
    for lexer in (get_lexer_for_filename("prog.ms", code),
                  get_lexer_for_filename("prog.ms")):
        assert type(lexer).__module__ == "compiler.highlight"
        assert lexer.name == "M/s" and "ms" in lexer.aliases


def _pygmentize(*args):
    script = pathlib.Path(sys.executable).with_name("pygmentize")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "pygments"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO)


@pytest.mark.parametrize("how", [["-l", "mslang"], []], ids=["by-name", "by-file"])
def test_pygmentize_highlights_an_example(how):
    done = _pygmentize(*how, "-f", "raw", "examples/gcd.ms")
    assert done.returncode == 0, done.stderr
    assert "Token.Name.Function\t'gcd_local'" in done.stdout
    assert "Token.Keyword.Declaration\t'master'" in done.stdout
    assert "Token.Name.Builtin\t'print'" in done.stdout
    assert "Token.Error" not in done.stdout
    guessed = _pygmentize("-N", "examples/gcd.ms")
    assert guessed.returncode == 0 and guessed.stdout.strip() == "mslang"
