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
    assert err.startswith("error[limit]: a forward of batch 8 needs at least") and "--batch" in err
