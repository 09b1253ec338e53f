"""A Pygments lexer for M/s (SPEC v1.1, sections 2, 5, 6, 12 and 13).

Installed with the compiler as the entry point `pygments.lexers` named `ms`
(pyproject.toml), so `pygmentize -l mslang prog.ms`, `pygmentize prog.ms`,
Sphinx and MkDocs find it. Pygments itself is optional: the compiler never
imports this module, and it is named only by the test extras.

The alias `ms` is also Pygments' own MiniScript lexer's, and a built-in lexer
wins an alias over a plugin, so `mslang` is the name that always means M/s.
By file name (`*.ms`, also MiniScript's), M/s wins: `analyse_text` recognises
a master block or a job declaration, and `priority` breaks the tie when no
text is given.

The token boundaries follow compiler/syntax/lexical.py; builtins are names, not
keywords (SPEC section 2), so they are Name.Builtin only where called. Text
the compiler would reject lexically (an unknown character or escape, a bad
number suffix, a newline inside a literal) is an Error token.
"""
import re

from pygments.lexer import RegexLexer, bygroups, default, include, words
from pygments.token import (Comment, Error, Keyword, Name, Number, Operator,
                            Punctuation, String, Whitespace)

__all__ = ["MsLexer"]

# SPEC section 2: the type keywords, and the builtins of sections 6, 12, 13.
_TYPES = ("int", "double", "bool", "char", "string", "void", "jobstate",
          "vector", "map", "job")
_BUILTINS = (
    "print", "len", "str", "get", "state", "cancel", "sqrt", "exp", "log",
    "sin", "cos", "tan", "atan2", "pow", "floor", "ceil", "abs", "min", "max",
    "args", "read_file", "write_file", "list_dir", "read_stdin", "eprint",
    "split", "join", "find", "slice", "sort", "repeat", "wait_any", "wait",
    "error", "fail", "slaves", "clock", "sleep", "has", "remove", "keys",
    "values")

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_NOT_WORD = r"(?![A-Za-z0-9_.])"


class MsLexer(RegexLexer):
    """M/s source: `master` blocks, `job` functions, `remote` calls."""

    name = "M/s"
    aliases = ["mslang", "ms"]
    filenames = ["*.ms"]
    mimetypes = ["text/x-ms"]
    priority = 0.1  # above MiniScript's 0 for *.ms when no text is given

    tokens = {
        "root": [
            include("trivia"),
            # struct NAME, maybe then the name of a function returning it
            (rf"(struct)(\s+)({_IDENT})(?:(\s+)({_IDENT})(?=\s*\())?",
             bygroups(Keyword.Declaration, Whitespace, Name.Class, Whitespace,
                      Name.Function)),
            # vector<...> / map<...> / job<...>, then a declared function name
            (r"(vector|map|job)(\s*)(<)",
             bygroups(Keyword.Type, Whitespace, Punctuation),
             ("after-generic", "generic")),
            (rf"({'|'.join(_TYPES[:7])})(\s+)({_IDENT})(?=\s*\()",
             bygroups(Keyword.Type, Whitespace, Name.Function)),
            (words(("if", "else", "while", "for", "return", "break",
                    "continue", "remote"), suffix=r"\b"), Keyword),
            (words(("master", "job", "struct"), suffix=r"\b"),
             Keyword.Declaration),
            (words(_TYPES, suffix=r"\b"), Keyword.Type),
            (words(("true", "false", "running", "finished", "failed",
                    "cancelled"), suffix=r"\b"), Keyword.Constant),
            include("literals"),
            (words(_BUILTINS, prefix=r"\b", suffix=r"(?=\s*\()"),
             Name.Builtin),
            (rf"{_IDENT}(?=\s*\()", Name.Function),
            (_IDENT, Name),
            (r"->|::|<<=|>>=|<<|>>|[-+*/%&|^]=|==|!=|<=|>=|&&|\|\|"
             r"|[-+*/%<>=!&|^~]", Operator),
            (r"[{}()\[\];,]", Punctuation),
        ],
        "trivia": [
            (r"\s+", Whitespace),
            (r"//.*?$", Comment.Single),
            (r"/\*[\s\S]*?\*/", Comment.Multiline),
        ],
        "literals": [
            (r"(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?" + _NOT_WORD,
             Number.Float),
            (r"[0-9]+[eE][+-]?[0-9]+" + _NOT_WORD, Number.Float),
            (r"[0-9]+" + _NOT_WORD, Number.Integer),
            (r'"', String.Double, "string"),
            (r"'", String.Char, "char"),
        ],
        "generic": [
            include("trivia"),
            (r"(vector|map|job)(\s*)(<)",
             bygroups(Keyword.Type, Whitespace, Punctuation), "#push"),
            (r">", Punctuation, "#pop"),
            (rf"(struct)(\s+)({_IDENT})",
             bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (words(_TYPES, suffix=r"\b"), Keyword.Type),
            (r",", Punctuation),
            default("#pop"),
        ],
        "after-generic": [
            (rf"(\s*)({_IDENT})(?=\s*\()",
             bygroups(Whitespace, Name.Function), "#pop"),
            default("#pop"),
        ],
        "escapes": [
            (r"\\(?:[ntr0\\'\"]|x[0-9A-Fa-f]{2})", String.Escape),
            (r"\\.?", Error),
            (r"\n", Error, "#pop"),
        ],
        "string": [
            (r'"', String.Double, "#pop"),
            include("escapes"),
            (r'[^"\\\n]+', String.Double),
        ],
        "char": [
            (r"'", String.Char, "#pop"),
            include("escapes"),
            (r"[^'\\\n]+", String.Char),
        ],
    }

    _LOOKS_LIKE_MS = re.compile(
        r"^\s*master\s*\{|^\s*job\s+[A-Za-z_<]|\bremote\s+[A-Za-z_]\w*\s*\(",
        re.MULTILINE)

    def analyse_text(text):
        """A master block, a job declaration or a remote call: surely M/s."""
        return 1.0 if MsLexer._LOOKS_LIKE_MS.search(text) else 0.0
