"""The msc command line: flags, exit statuses, outputs (SPEC section 8)."""
import re
import subprocess

import pytest

from compiler.passes import parse
from compiler.passes.parse import MAX_DEPTH
from compiler.pipeline import PASS_NAMES, PASSES, Source, deep_call
from harness import REPO, msc, run_bounded

GCD = REPO / "examples" / "gcd.ms"


def test_list_passes_names_spec_passes_in_order():
    result = msc("--list-passes")
    assert result.returncode == 0
    names = result.stdout.split()
    spec_order = ["parse", "desugar-strings", "resolve-structs", "typecheck",
                  "lower-vectors", "insert-refcounts", "lower-remote", "codegen"]
    assert [n for n in names if n in spec_order] == spec_order


def test_unknown_flag_is_usage_error():
    result = msc("--bogus", GCD)
    assert result.returncode == 2
    assert "msc: error:" in result.stderr and "Traceback" not in result.stderr


def test_no_input_is_usage_error():
    result = msc()
    assert result.returncode == 2 and "no input file" in result.stderr


def test_unknown_pass_is_usage_error():
    result = msc(GCD, "--dump-after=nope")
    assert result.returncode == 2 and "nope" in result.stderr


def test_missing_file_is_usage_error():
    result = msc("does-not-exist.ms")
    assert result.returncode == 2
    assert "cannot read does-not-exist.ms" in result.stderr


def compile_bytes(tmp_path, name: str, data: bytes):
    """Compile a source file of these bytes; it must be rejected (exit 1)."""
    (tmp_path / name).write_bytes(data)
    result = msc(name, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    return result


def test_invalid_utf8_is_compile_error(tmp_path):
    result = compile_bytes(tmp_path, "bad.ms", b"master {\n  print(1); \xff\n}\n")
    assert result.stderr.startswith("bad.ms:2:13: error: source is not valid UTF-8")


def test_invalid_utf8_shows_the_line_with_a_caret_at_the_first_bad_byte(tmp_path):
    # the column counts characters (\xc3\xa9 is one), the line is shown with
    # every bad sequence as U+FFFD, and the caret is under the first one
    result = compile_bytes(tmp_path, "bad.ms", b"master {\n  print(\"h\xc3\xa9\xff\xfe\"); x\n}\n")
    assert result.stderr == (
        "bad.ms:2:12: error: source is not valid UTF-8 (byte 0xff)\n"
        '  print("h\u00e9\ufffd\ufffd"); x\n'
        "           ^\n")


def test_truncated_utf8_at_end_of_file(tmp_path):
    result = compile_bytes(tmp_path, "cut.ms", b"master { print(1); }\n// \xe2\x82")
    assert result.stderr.startswith(
        "cut.ms:2:4: error: source is not valid UTF-8 (byte 0xe2)\n// \ufffd\n   ^")


def test_nul_byte_is_located_and_shown_visibly(tmp_path):
    result = compile_bytes(tmp_path, "nul.ms", b"master { print(1); \x00 }\n")
    assert result.stderr == ("nul.ms:1:20: error: unexpected character U+0000\n"
                             "master { print(1); \ufffd }\n"
                             "                   ^\n")


def test_empty_file_is_a_located_error(tmp_path):
    result = compile_bytes(tmp_path, "empty.ms", b"")
    assert result.stderr.startswith(
        "empty.ms:1:1: error: the program has no master block")
    assert "Traceback" not in result.stderr


def test_leading_bom_is_skipped_and_columns_ignore_it(tmp_path):
    result = compile_bytes(tmp_path, "bom.ms", b"\xef\xbb\xbfmaster { print(1) }\n")
    assert result.stderr == (
        "bom.ms:1:18: error: expected ';' after expression, found '}'\n"
        "master { print(1) }\n"
        "                 ^\n")
    (tmp_path / "bom.ms").write_bytes(b"\xef\xbb\xbfmaster { print(1); }\n")
    assert msc("bom.ms", "--dump-after=parse", cwd=tmp_path).returncode == 0


def test_bom_elsewhere_is_an_error(tmp_path):
    result = compile_bytes(tmp_path, "bom2.ms", b"master { \xef\xbb\xbfprint(1); }\n")
    assert result.stderr.startswith("bom2.ms:1:10: error: unexpected character U+FEFF")


def test_crlf_line_endings_keep_columns(tmp_path):
    result = compile_bytes(tmp_path, "crlf.ms", b"master {\r\n  int x = 1;\r\n  print(x + true);\r\n}\r\n")
    assert result.stderr == ("crlf.ms:3:11: error: cannot add int and bool\n"
                             "  print(x + true);\n"
                             "          ^\n")


def test_directory_as_input_is_usage_error(tmp_path):
    result = msc(tmp_path)
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_unreadable_file_is_usage_error(tmp_path):
    import os
    src = tmp_path / "secret.ms"
    src.write_bytes(b"master { print(1); }\n")
    src.chmod(0)
    try:
        if os.access(src, os.R_OK):   # root reads anything: a dangling link
            src = tmp_path / "dangling.ms"
            src.symlink_to(tmp_path / "nowhere")
        result = msc(src)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"msc: error: cannot read {src}: ")
        assert "Traceback" not in result.stderr
    finally:
        (tmp_path / "secret.ms").chmod(0o644)


def test_dump_after_every_pass(tmp_path):
    for name in msc("--list-passes").stdout.split():
        result = msc(GCD, f"--dump-after={name}")
        assert result.returncode == 0, (name, result.stderr)
        assert result.stdout.strip(), name
    assert "define" in msc(GCD, "--dump-after=codegen").stdout


def test_emit_llvm_and_obj(tmp_path):
    out = tmp_path / "g"
    assert msc(GCD, "--emit=llvm", "-o", out).returncode == 0
    assert "ms_master_main" in (tmp_path / "g.ll").read_text()
    assert msc(GCD, "--emit=obj", "-o", out).returncode == 0
    assert (tmp_path / "g.o").read_bytes()[:4] == b"\x7fELF"


def test_default_output_name_and_every_opt_level(tmp_path, runtime_built):
    src = tmp_path / "gcd.ms"
    src.write_text(GCD.read_text())
    for level in ("-O0", "-O1", "-O2", "-O3"):
        assert msc(src.name, level, cwd=tmp_path).returncode == 0
        run = run_bounded([str(tmp_path / "gcd-master")], timeout=60)
        assert run.returncode == 0, run.stderr
        assert run.stdout == "21\n1\n"


def test_make_links_a_program_from_its_source(tmp_path, runtime_built):
    exe = REPO / "examples" / "gcd-master"
    subprocess.run(["make", "-s", "examples/gcd-master", "examples/gcd-slave"],
                   cwd=REPO, check=True, capture_output=True, timeout=300)
    assert (REPO / "examples" / "gcd-slave").exists()
    run = run_bounded([str(exe), "--spawn", "2"], timeout=60)
    assert run.stdout == "21\n1\n"


def test_master_bad_usage_exits_2(tmp_path, runtime_built):
    assert msc(GCD, "-o", tmp_path / "g").returncode == 0
    for args in (["--spawn", "x"], ["--bogus"], ["--listen", "nohostport"]):
        run = run_bounded([str(tmp_path / "g-master"), *args], timeout=30)
        assert run.returncode == 2, (args, run.stderr)
    run = run_bounded([str(tmp_path / "g-slave")], timeout=30)
    assert run.returncode == 2


# ------------------------------------------------------------ deep programs
# In-process (one compile, every stage printed), since under load eight
# msc runs of such programs take minutes.

def chains_program(n: int, branches: int, others: int | None = None) -> str:
    """Long operator chains (each as deep as it is long: `+` n terms, the
    others `others` terms) and a long `else if` chain: what every pass,
    checker and printer must take."""
    m = n if others is None else others
    return "\n".join([
        "master {",
        "  int x = 3; bool t = true; string s = \"ab\"; vector<int> v;",
        "  print(" + "+".join(["1"] * n) + ");",
        "  print(" + "-".join(["x"] * m) + ");",
        "  print(" + " && ".join(["t"] * m) + ");",
        "  print(" + " || ".join(["!t"] * m) + ");",
        "  print(" + "-" * m + "x);",
        "  print(len(" + " + ".join(["s"] * m) + "));",
        "  v" + " :: 1" * m + ";",
        "  if (x == 0) { print(0); }"
        + "".join(f" else if (x == {i}) {{ print({i}); }}" for i in range(1, branches))
        + " else { print(-1); }",
        "  print(len(v));",
        "}",
    ]) + "\n"


def compile_printing_every_stage(text: str) -> dict:
    """Run each pass (and its checker) in turn, printing the IR after it,
    all on the pipeline's deep stack; pass name -> printed size."""
    def go():
        sizes, ir = {}, Source("deep.ms", text)
        for spec in PASSES:
            ir = spec.run(ir)
            spec.checker(ir)
            sizes[spec.name] = len(spec.printer(ir))
        return sizes
    return deep_call(go)


def test_20000_term_chains_and_5000_branches_through_every_pass():
    # The other chains shorter: under load this is minutes already.
    sizes = compile_printing_every_stage(chains_program(20000, 5000, 4000))
    assert list(sizes) == list(PASS_NAMES) and all(sizes.values())


def test_deep_program_compiles_and_runs(tmp_path, runtime_built):
    src = tmp_path / "deep.ms"
    src.write_text(chains_program(3000, 1000))
    result = msc(src.name, "-O0", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    run = run_bounded([str(tmp_path / "deep-master"), "--spawn", "1"], timeout=120)
    assert run.stdout == "3000\n-8994\ntrue\nfalse\n3\n6000\n3\n3000\n"


def test_too_deep_expression_is_located_error(tmp_path):
    src = tmp_path / "deeper.ms"
    src.write_text("master {\n  print(" + "+".join(["1"] * (MAX_DEPTH + 10))
                   + ");\n}\n")
    result = msc(src.name, cwd=tmp_path, timeout=600)
    assert result.returncode == 1, result.stderr[-2000:]
    first = result.stderr.splitlines()[0]
    # the '+' at which the chain got one level deeper than the limit
    assert re.fullmatch(r"deeper\.ms:2:(\d+): error: expression nested too "
                        rf"deeply \(more than {MAX_DEPTH} levels\)", first), first
    col = int(first.split(":")[2])
    assert result.stderr.splitlines()[1][col - 1] == "+"


def test_too_deep_else_if_chain_is_located_error(monkeypatch):
    from compiler.errors import CompileError
    monkeypatch.setattr(parse, "MAX_DEPTH", 1000)
    text = ("master {\n  int x = 3;\n  if (x == 0) { }"
            + " else if (x == 1) { }" * 1200 + "\n}\n")
    with pytest.raises(CompileError) as e:
        deep_call(parse.run, Source("chain.ms", text))
    assert e.value.message == "statement nested too deeply (more than 1000 levels)"
    assert e.value.pos.line == 3
