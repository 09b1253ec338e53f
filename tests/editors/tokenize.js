// Tokenizes M/s files with the VS Code grammar, through the same libraries
// VS Code uses (vscode-textmate, vscode-oniguruma), and prints the tokens
// as JSON on stdout: {"FILE": [[{"text": ..., "scopes": [...]}, ...], ...]}
// with one inner list per line. tests/test_editors.py runs it with NODE_PATH
// pointing at the npm folder where it installed the two packages.
//
//   node tokenize.js GRAMMAR.tmLanguage.json FILE.ms...
"use strict";
const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

async function main(argv) {
  if (argv.length < 2) {
    process.stderr.write("usage: node tokenize.js GRAMMAR FILE...\n");
    return 2;
  }
  const [grammarPath, ...files] = argv;
  const wasm = fs.readFileSync(
    path.join(path.dirname(require.resolve("vscode-oniguruma")), "onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer);
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scopeName) => scopeName === "source.ms"
      ? vsctm.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath)
      : null,
  });
  const grammar = await registry.loadGrammar("source.ms");
  if (grammar === null) {
    process.stderr.write(`${grammarPath}: no grammar for source.ms\n`);
    return 1;
  }
  const out = {};
  for (const file of files) {
    let stack = vsctm.INITIAL;
    out[file] = fs.readFileSync(file, "utf8").split(/\r?\n/).map((line) => {
      const result = grammar.tokenizeLine(line, stack);
      stack = result.ruleStack;
      return result.tokens.map((t) => ({
        text: line.substring(t.startIndex, t.endIndex),
        scopes: t.scopes,
      }));
    });
  }
  process.stdout.write(JSON.stringify(out));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { process.stderr.write(`tokenize.js: ${err.stack || err}\n`); process.exitCode = 1; });
