"""Hostile specs: each gives a clean NetcError (exit status 2, compiler-style message, no
traceback) within bounded time and memory.

Bounds: every case runs `netc check` in a fresh process with its address space limited to
MEMORY_LIMIT (RLIMIT_AS) and a wall-clock TIMEOUT. A MemoryError would surface as exit status 70
(internal error) and a hang as a timeout, so passing means the spec was refused within both.
Nothing a spec says is ever executed: the cases that try to run code check that it did not run.
"""
from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

MEMORY_LIMIT = 1 * 2**30  # bytes of address space for the whole netc process
TIMEOUT = 30  # seconds of wall time (each case takes well under 2 s on an idle machine except where noted)
HEAD = "netc: 1\nname: t\ninput: [3, 32, 32]\n"
DIAG = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): error\[(?P<code>[a-z-]+)\]: ", re.M)


def _limit():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def netc_check(path, *args, timeout=TIMEOUT):
    proc = subprocess.run([sys.executable, "-c", "from netc.cli import run; run()", "check", "-q", str(path), *args],
                          capture_output=True, text=True, timeout=timeout, preexec_fn=_limit,
                          cwd=Path(__file__).resolve().parent.parent)
    return proc.returncode, proc.stdout, proc.stderr


def refused(path, code, *args, timeout=TIMEOUT):
    status, out, err = netc_check(path, *args, timeout=timeout)
    assert status == 2, (status, out[-500:], err[-2000:])
    assert "Traceback" not in err and "internal error" not in err
    m = DIAG.search(err)
    assert m, err[:500]
    assert m["code"] == code, err[:1000]
    return err


def spec(tmp_path, text: str | bytes, name="hostile.yaml"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


# --- YAML structure ---------------------------------------------------------------------------

def billion_laughs():
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):  # 10**10 items once expanded
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return HEAD + "meta:\n" + "".join(f"  {l}\n" for l in lines) + "layers: [relu]\n"


CASES = {
    "billion_laughs": (billion_laughs(), "limit"),
    "recursive_alias": (HEAD + "meta: &m {self: *m}\nlayers: [relu]\n", "yaml"),
    "nested_flow_sequences_10000": (HEAD + "layers: " + "[" * 10_000 + "relu" + "]" * 10_000 + "\n", "limit"),
    "nested_block_sequences_10000": (HEAD + "layers:\n" + "- " * 10_000 + "relu\n", "limit"),
    "nested_mappings_10000": (HEAD + "meta: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\nlayers: [relu]\n", "limit"),
    "nested_structures_beyond_max_depth": (HEAD + "layers: " + "[" * 90 + "relu" + "]" * 90 + "\n", "limit"),
    "many_documents": (HEAD + "layers: [relu]\n" + "---\na: 1\n" * 10_000, "yaml"),
    # --- numbers ---
    "nan_channels": (HEAD + "layers:\n  - conv: {out: .nan, k: 3}\n", "schema"),
    "inf_residual_scale": (HEAD + "layers:\n  - residual: {body: relu, scale: .inf}\n", "schema"),
    "inf_param": (HEAD + "params: {w: -.inf}\nlayers:\n  - dropout: {p: $w}\n", "schema"),
    "overflowing_float": (HEAD + "layers:\n  - scale: {factor: 1e999}\n", "schema"),
    "huge_integer": (HEAD + "layers:\n  - conv: {out: " + "9" * 100_000 + ", k: 3}\n", "schema"),
    "huge_repeat": (HEAD + "layers:\n  - {relu: {}, repeat: 9223372036854775807}\n", "limit"),
    "huge_input": ("netc: 1\nname: t\ninput: [3, 4611686018427387904, 4611686018427387904]\n"
                   "layers: [flatten, {linear: {out: 10}}]\n", "limit"),
    "huge_channels": (HEAD + "layers:\n  - conv: {out: 4000000000, k: 3}\n", "limit"),
    # --- expressions ---
    "attribute_access": (HEAD + "params: {c: 8}\nlayers:\n  - conv: {out: $c.__class__, k: 3}\n", "expr"),
    "call_import": (HEAD + "params: {c: 8}\nlayers:\n  - conv: {out: \"__import__('os').system('touch PWNED') + $c\", k: 3}\n",
                    "expr"),
    "dunder_variable": (HEAD + "layers:\n  - conv: {out: $__builtins__, k: 3}\n", "undefined-var"),
    "exponent_tower": (HEAD + "params: {c: 2}\nlayers:\n  - conv: {out: $c ** 10 ** 10, k: 3}\n", "expr"),
    "string_blowup": (HEAD + "params: {s: ab}\nlayers:\n  - {name: \"$s * 1000000000\", relu: {}}\n", "schema"),
    "nested_parentheses": (HEAD + "params: {c: 2}\nlayers:\n  - conv: {out: \"" + "(" * 400 + "$c" + ")" * 400 + "\", k: 3}\n",
                           "expr"),
    "long_expression": (HEAD + "params: {c: 2}\nlayers:\n  - conv: {out: \"$c" + " + 1" * 100_000 + "\", k: 3}\n", "expr"),
    "lambda": (HEAD + "params: {c: 2}\nlayers:\n  - conv: {out: \"(lambda: $c)()\", k: 3}\n", "expr"),
    "comprehension": (HEAD + "params: {c: 2}\nlayers:\n  - conv: {out: \"[x for x in range($c)]\", k: 3}\n", "expr"),
    # --- names ---
    "name_with_quotes": (HEAD + "layers:\n  - {name: \"a'\\\"b\", relu: {}}\n", "schema"),
    "name_with_newline": (HEAD + "layers:\n  - {name: \"a\\nimport os\", relu: {}}\n", "schema"),
    "name_path_traversal": ("netc: 1\nname: ../../../tmp/evil\ninput: [3, 32, 32]\nlayers: [relu]\n", "schema"),
    "name_unicode_confusable": (HEAD + "layers:\n  - {name: \"re\u217Cu\", relu: {}}\n", "schema"),  # ROMAN NUMERAL FIFTY
    "name_huge": (HEAD + "layers:\n  - {name: " + "a" * 1_000_000 + ", relu: {}}\n", "schema"),
    "output_html": (HEAD + "layers:\n  - {relu: {}, output: \"<script>alert(1)</script>\"}\n", "schema"),
    "template_name_injection": (HEAD + "templates:\n  \"T(nn.Module): pass\\nimport os\": {body: relu}\nlayers: [relu]\n",
                                "schema"),
    "unknown_key_long": (HEAD + "layers:\n  - {relu: {}, " + "x" * 1000 + ": 1}\n", "unknown-op"),
    "key_beyond_yaml_limit": (HEAD + "layers:\n  - {relu: {}, " + "x" * 1_000_000 + ": 1}\n", "yaml"),
    # --- templates ---
    "template_self_recursion": (HEAD + "templates:\n  T: {body: {use: T}}\nlayers: [{use: T}]\n", "template"),
    "template_recursion_via_repeat": (HEAD + "templates:\n  T: {body: {repeat: 2, use: U}}\n  U: {body: [relu, {use: T}]}\n"
                                      "layers: [{use: T}]\n", "template"),
    "template_chain_beyond_max_depth": (HEAD + "templates:\n" + "".join(
        f"  T{i}: {{body: {{use: T{i + 1}}}}}\n" for i in range(200)) + "  T200: {body: relu}\nlayers: [{use: T0}]\n", "limit"),
    "exponential_repeat": (HEAD + "layers:\n  - repeat: 1000\n    seq: [{repeat: 1000, seq: [{repeat: 1000, relu: {}}]}]\n",
                           "limit"),
    # --- tags and imports ---
    "python_object_apply": (HEAD + "meta: !!python/object/apply:os.system ['touch PWNED']\nlayers: [relu]\n", "yaml-tag"),
    "python_name": (HEAD + "meta: !!python/name:os.system\nlayers: [relu]\n", "yaml-tag"),
    "import_etc_passwd": (HEAD + "imports: [{file: ../../../../../../../../etc/passwd}]\nlayers: [relu]\n", "import"),
    "import_absolute": (HEAD + "imports: [{file: /etc/hostname}]\nlayers: [relu]\n", "import"),
    "many_errors": (HEAD + "layers:\n" + "  - {convv: {}}\n" * 5_000, "unknown-op"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_spec(name, tmp_path):
    text, code = CASES[name]
    path = spec(tmp_path, text)
    err = refused(path, code)
    assert len(err) < 5_000_000  # messages echo input clipped
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


def test_thousands_of_errors_are_summarised(tmp_path):
    err = refused(spec(tmp_path, CASES["many_errors"][0]), "unknown-op")
    assert err.count("error[") == 100 and "4900 more not shown" in err and err.rstrip().endswith("5000 errors")


def test_huge_key_is_clipped_in_the_message(tmp_path):
    err = refused(spec(tmp_path, CASES["unknown_key_long"][0]), "unknown-op")
    assert len(err) < 600


def test_fifty_megabyte_file(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as f:
        f.write(HEAD.encode() + b"layers:\n")
        line = b"  - relu\n"
        f.write(line * (50 * 2**20 // len(line)))
    err = refused(path, "limit")
    assert "--max-file-bytes" in err


def test_max_file_bytes_is_a_setting(tmp_path):
    path = spec(tmp_path, HEAD + "layers: [relu]\n" + "#" * 1000 + "\n")
    refused(path, "limit", "--max-file-bytes", "500")
    assert netc_check(path, "--max-file-bytes", "5000")[0] == 0


def test_endless_device_file():
    # a spec path that is not a regular file is refused before it is opened (a FIFO would block)
    status, _, err = netc_check("/dev/zero")
    assert status == 2 and err.startswith("/dev/zero: error[io]: ") and "not a regular file" in err


@pytest.mark.parametrize("data,line,col", [
    (HEAD.encode() + b"description: caf\xe9\nlayers: [relu]\n", 4, 17),  # Latin-1 byte
    (HEAD.encode() + b"layers: [relu]\n\xff\xfe", 5, 1),
    ("\ufeffnetc: 1\n".encode("utf-16"), 1, 1),
    (HEAD.encode() + b"name2: a\x00b\n", 4, 9),
])
def test_not_utf8_text(tmp_path, data, line, col):
    err = refused(spec(tmp_path, data), "encoding")
    m = DIAG.search(err)
    assert (int(m["line"]), int(m["col"])) == (line, col)


def test_limits_are_settings(tmp_path):
    deep = spec(tmp_path, HEAD + "layers: " + "[" * 30 + "relu" + "]" * 30 + "\n")
    assert netc_check(deep)[0] == 0
    refused(deep, "limit", "--max-depth", "10")
    many = spec(tmp_path, HEAD + "layers:\n  - {relu: {}, repeat: 500}\n", "many.yaml")
    refused(many, "limit", "--max-nodes", "100")
    big = spec(tmp_path, HEAD + "layers:\n  - conv: {out: 1000, k: 3}\n", "big.yaml")
    refused(big, "limit", "--max-param-bytes", "1000")


@pytest.mark.parametrize("value", ["!!python/object/apply:os.system ['touch PWNED']", ".nan", "1e999", "[1",
                                   "9" * 5000, "__import__('os')"])
def test_hostile_set_values(tmp_path, value):
    path = spec(tmp_path, HEAD + "params: {c: 8}\nlayers:\n  - conv: {out: $c, k: 3}\n")
    status, _, err = netc_check(path, "--set", f"c={value}")
    assert status == 2 and "error[usage]" in err and "Traceback" not in err
    assert not Path("PWNED").exists()


def test_spec_symlinked_outside_its_directory_cannot_be_imported(tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text("netc: 1\ntemplates: {T: {body: relu}}\n")
    inner = tmp_path / "specs"
    inner.mkdir()
    os.symlink(outside, inner / "lib.yaml")
    path = spec(inner, HEAD + "imports: [{file: lib.yaml}]\nlayers: [{use: T}]\n")
    refused(path, "import")


def test_import_chain_beyond_max_depth(tmp_path):
    for i in range(30):
        (tmp_path / f"lib{i}.yaml").write_text(
            f"netc: 1\nimports: [{{file: lib{i + 1}.yaml}}]\ntemplates: {{T{i}: {{body: relu}}}}\n")
    (tmp_path / "lib30.yaml").write_text("netc: 1\ntemplates: {T30: {body: relu}}\n")
    refused(spec(tmp_path, HEAD + "imports: [{file: lib0.yaml}]\nlayers: [{use: T0}]\n"), "limit")


def test_max_file_bytes_applies_to_imports(tmp_path):
    (tmp_path / "lib.yaml").write_text("netc: 1\ntemplates: {T: {body: relu}}\n" + "#" * 5000 + "\n")
    path = spec(tmp_path, HEAD + "imports: [{file: lib.yaml}]\nlayers: [{use: T}]\n")
    assert netc_check(path)[0] == 0
    err = refused(path, "limit", "--max-file-bytes", "1000")
    assert "lib.yaml" in err
