"""The syntax of M/s, for the parse pass (compiler/passes/parse.py): the PEG
grammar (grammar.peg) and the tokenizer (lexical.py)."""
