"""No internal errors on bad input: specs that used to pass `check` and crash a later command
(or crash `check` itself, exit 70) get a located diagnostic and exit 2 from every command."""
from __future__ import annotations

import pytest

from tests.test_hostile import DIAG, HEAD, refused, spec

CASES = {
    "make_divisible_by_zero": (HEAD + "vars: {c: 8}\nlayers:\n  - conv: {out: 'make_divisible($c, 0)', k: 3}\n",
                               "expr", 6),
    "import_path_with_nul": (HEAD + 'imports: [{file: "a\\0b.yaml"}]\nlayers: [relu]\n', "import", 4),
    "import_path_5000_chars": (HEAD + f"imports: [{{file: {'a' * 5000}.yaml}}]\nlayers: [relu]\n", "import", 4),
    "at_float_key": (HEAD + "layers:\n  - {name: r, repeat: 3, relu: {}, at: {1.0: {}}}\n", "schema", 5),
    "outputs_twice": (HEAD + "layers:\n  - {relu: {}, output: a}\n  - relu\noutputs: [out, a, a]\n", "name", 7),
    "output_renamed_into_collision": (HEAD + "layers:\n  - {relu: {}, output: _a}\n  - {relu: {}, output: out1}\n",
                                      "name", 5),
    "side_name_as_output": (HEAD + "layers:\n  - {side: [relu], name: _a}\n  - relu\n", "name", 5),
    "layer_named_training": (HEAD + "layers:\n  - {name: training, relu: {}}\n", "name", 5),
    "layer_named__modules": (HEAD + "layers:\n  - {name: blk, seq: [{name: _modules, relu: {}}]}\n", "name", 5),
    "layer_named_mangled": (HEAD + "layers:\n  - {name: blk, seq: [{name: __w, conv: {out: 4, k: 1}}]}\n",
                            "name", 5),
    "input_beyond_torch_storage": ("netc: 1\nname: t\ninput: [3, 2147483648, 2147483648]\n"
                                   "layers: [{conv: {out: 3, k: 1}}]\n", "limit", 3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_a_located_error(name, tmp_path):
    text, code, line = CASES[name]
    err = refused(spec(tmp_path, text), code)
    assert int(DIAG.search(err)["line"]) == line, err


@pytest.mark.parametrize("name", ["outputs_twice", "layer_named_training", "layer_named_mangled",
                                  "input_beyond_torch_storage", "at_float_key"])
@pytest.mark.parametrize("command", ["table", "render", "codegen", "build"])
def test_every_command_refuses_alike(name, command, tmp_path, netc_cli):
    text, code, line = CASES[name]
    args = {"render": ["--dot", "-o", tmp_path / "x.dot"], "codegen": ["-o", tmp_path],
            "build": ["--device", "cpu", "--codegen-dir", ""]}.get(command, [])
    status, out, err = netc_cli(command, spec(tmp_path, text), *args)
    assert status == 2, (out, err)
    m = DIAG.search(err)
    assert m and (m["code"], int(m["line"])) == (code, line), err


def test_bench_refuses_activations_that_cannot_fit(tmp_path, netc_cli):
    # 3x100000x100000 in batches of 8 would allocate ~2 TB before the first forward
    path = spec(tmp_path, "netc: 1\nname: t\ninput: [3, 100000, 100000]\nlayers: [{conv: {out: 4, k: 3}}]\n")
    status, out, err = netc_cli("bench", path, "--device", "cpu")
    assert status == 2, (out, err)
    m = DIAG.search(err)
    assert m and (m["code"], int(m["line"])) == ("limit", 4), err
    assert "a forward of batch 8 needs at least" in err and "--batch" in err


# a 1 KB spec whose forward needs terabytes: 3x8x8 upsampled 10^5 times is 4x800000x800000
HUGE_UPSAMPLE = HEAD.replace("[3, 32, 32]", "[3, 8, 8]") + "layers:\n  - upsample: {scale: 100000}\n  - conv: {out: 4, k: 1}\n"


@pytest.mark.parametrize("command", [["export", "--onnx", "OUT"], ["export", "--torch-export", "OUT"],
                                     ["build", "--device", "cpu", "--optimize", "inference", "--compile",
                                      "--codegen-dir", ""]])
def test_every_real_forward_refuses_activations_that_cannot_fit(command, tmp_path, netc_cli):
    """Export and compile run the module on an example batch; each checks the memory that batch
    needs first and points at the op whose output is the largest, writing nothing."""
    out = tmp_path / "model.out"
    status, _, err = netc_cli(*[out if a == "OUT" else a for a in command[:1]], spec(tmp_path, HUGE_UPSAMPLE),
                              *[out if a == "OUT" else a for a in command[1:]])
    assert status == 2, err
    m = DIAG.search(err)
    assert m and (m["code"], int(m["line"])) == ("limit", 6), err
    assert "the output of '1' (conv): 4×800000×800000" in err and "--input" in err and "--batch" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "hostile.yaml"]


def test_import_checks_the_verification_forward_fits(tmp_path, netc_cli):
    from tests.test_import import FIXTURE

    status, _, err = netc_cli("import", f"{FIXTURE}:Small", "--input", "3x100000x100000", "--check-only")
    assert status == 2 and "error[limit]: a forward of batch 2 needs at least" in err, err
