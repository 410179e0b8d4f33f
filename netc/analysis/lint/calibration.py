"""docs/lint.md: every rule, its source, and what it finds in the bundled catalogue, with a verdict.

The verdicts are written here, by hand, for each (rule, spec) pair that fires; the document is
generated from them and a fresh lint of every bundled spec (suppressions off, every severity), so
a rule that starts or stops firing on a spec makes `tests/test_lint.py` fail until the verdict
table says why. `netc lint --catalogue-doc -o docs/lint.md` regenerates it.
"""
from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

from netc.analysis.lint import RULES, lint
from netc.analysis.lint.output import group

# (rule, spec-name pattern) -> verdict. "real": the spec really has the problem the rule describes;
# "by design": it does, and the spec keeps it on purpose (the paper or the reference model does it).
VERDICTS = {
    ("NL102", "inception_v3"): "real, by design: torchvision's (and TF-slim's) Inception-v3 keeps a 5×5 conv in the "
                               "35×35 modules, where the paper's Fig. 5 has two 3×3; kept for state_dict compatibility.",
    ("NL102", "inception_resnet_v2"): "real, by design: the Inception-ResNet-v2 stem's mixed_5b (from the TF-slim "
                                      "model timm ports) uses a 5×5 branch.",
    ("NL103", "googlenet_v1"): "real, by design: the 2014 paper's 5×5 branches on the 14×14 grid (inception 4a-4d; "
                               "in 4e the factorisation saves nothing), which Inception-v3 §3.2 later factorised; "
                               "the spec reproduces Table 1.",
    ("NL104", "vgg*"): "real, by design: VGG pools before each channel doubling (Fig. 9 left of Inception-v3, which "
                       "postdates it); the spec reproduces Table 1.",
    ("NL104", "alexnet*"): "real, by design: AlexNet pools before conv2 widens 96 -> 256 (64 -> 192 in torchvision's); "
                           "the spec reproduces the paper.",
    ("NL104", "lenet5"): "real, by design: LeNet-5's S2 subsampling precedes C3's 6 -> 16 expansion.",
    ("NL201", "lenet5"): "real, by design: F5/F6 are fully connected over 16×5×5 as in the paper (C5 is a 5×5 conv "
                         "there, which is the dense form the rule suggests).",
    ("NL201", "alexnet_grouped"): "real, by design: the paper's fully connected fc6 over 256×6×6; torchvision's "
                                  "alexnet adds adaptive pooling instead (not flagged).",
    ("NL201", "googlenet_v1"): "real, by design: the paper's auxiliary classifiers (§5) put FC 1024 over a fixed "
                               "5×5/3-pooled 128×4×4 map; they run in training only, at the training size.",
    ("NL201", "alexnet"): "real, by design: the paper's fully connected fc6 over 256×6×6.",
    ("NL301", "resnet34_c"): "real, by design: option C is what this spec reproduces (He et al. §4.1 found it "
                             "marginally better than B, not worth the parameters); silenced in the spec.",
    ("NL302", "resnet*_v1"): "real, by design: ResNet v1 strides the first 1×1 conv of a downsampling bottleneck, "
                             "as the paper; resnet50/101/152 (v1.5) move it to the 3×3. Silenced in the spec.",
    ("NL302", "regnet*"): "real, by design: torchvision's RegNet (pycls's ResBottleneckBlock) strides the 1×1 "
                          "projection shortcut of each stage's first block; the spec loads its weights. Silenced in "
                          "the spec.",
    ("NL401", "regnet*"): "real, by design: RegNet groups its 3×3 convs by a fixed group width (8 channels at "
                          "400MF), a parameter of the design space Radosavovic et al. 2020 search; it spends memory "
                          "access where ShuffleNet V2's G2 would not. The spec loads torchvision's weights; "
                          "silenced in the spec.",
    ("NL501", "vgg*_bn"): "real, by design: torchvision's vgg*_bn keep the conv bias before each batch norm, and the "
                          "spec loads their weights; silenced in the spec.",
    ("NL501", "inception_v2"): "real, by design: the Caffe-derived BN-Inception port has a bias in every conv before "
                               "its batch norm; silenced in the spec.",
    ("NL506", "googlenet"): "real, by design: torchvision's GoogLeNet pools with ceil_mode (from Caffe); the spec "
                            "loads its weights, so the sizes must match.",
    ("NL506", "googlenet_v1"): "real, by design: the BVLC Caffe GoogLeNet rounds pooling sizes up (56, 28, 14 as "
                               "in Table 1); the spec reproduces it.",
    ("NL506", "inception_v2"): "real, by design: the Caffe port pools with ceil_mode.",
    ("NL101", "fcn_resnet*"): "real, by design: the last 1×1 conv maps each position of the 512-channel map to the "
                              "classes: the network's output, the representation for the task that principle 1 "
                              "leaves free (a classifier's last linear has no grid, so is not flagged); silenced in "
                              "the spec.",
    ("NL101", "deeplabv3_*"): "real, by design: the last 1×1 conv maps each position of the 256-channel map to the "
                              "classes: the network's output, as for FCN; silenced in the spec.",
    ("NL402", "deeplabv3_*"): "real, by design: ASPP (Chen et al. 2017 §3.3) is five parallel branches (a 1×1, three "
                              "atrous 3×3s, image pooling) joined once; the spec loads torchvision's weights.",
    ("NL302", "res2net*"): "a false positive: the stride-2 1×1 conv is the projection shortcut of Res2Net's first "
                           "bottlenecks, whose body reads every position through its strided 3×3s; the shortcut "
                           "finder walks back through single-input nodes, which the body's split-and-concat stops. "
                           "Silenced in the spec.",
    ("NL501", "hrnet*"): "real, by design: timm's HRNet head (downsamp_modules, final_layer) keeps a conv bias "
                         "before each batch norm (conv_bias=True), and the spec loads its weights; silenced in the "
                         "spec.",
    ("NL401", "resnext*"): "real, by design: ResNeXt's grouped 3×3 (cardinality 32 or 64, Xie et al. 2016) is the "
                           "architecture, which Ma et al. 2018 (G2) measure as memory-bound; silenced in the spec.",
    ("NL401", "dpn*"): "real, by design: DPN's 3×3 convs are grouped (G = 32 to 50, Chen et al. 2017 Table 1, after "
                       "ResNeXt), measured memory-bound by Ma et al. 2018 (G2); the spec loads timm's weights; "
                       "silenced in the spec.",
    ("NL302", "dpn*"): "real, by design: a DPN stage's first block projects its input for both paths through a "
                       "stride-2 1×1 conv (timm's c1x1_w_s2, from the MXNet original), while its grouped 3×3 reads "
                       "every position; the spec loads timm's weights; silenced in the spec.",
}


def verdict(rule: str, spec: str) -> str | None:
    return next((v for (r, pattern), v in VERDICTS.items() if r == rule and fnmatch(spec, pattern)), None)


def catalogue_findings():
    """(spec name, groups of findings) for every bundled spec: all rules, suppressions off."""
    from netc.api import load
    from netc.catalogue import spec_files

    root = Path(__file__).resolve().parents[3]
    out = []
    for path in spec_files():
        found, _ = lint(load(path), suppress=False)
        out.append((path.stem, group(found), root))
    return out


def _where(loc, root: Path) -> str:
    if loc is None:
        return ""
    p = Path(loc.file)
    rel = p.relative_to(root) if p.is_absolute() and p.is_relative_to(root) else p
    return f"`{rel.as_posix()}:{loc.line}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def document() -> str:
    found = catalogue_findings()
    lines = ["# `netc lint`: rules and their calibration on the catalogue", "",
             "<!-- generated by `netc lint --catalogue-doc -o docs/lint.md`; do not edit -->", "",
             "Each rule states a design principle of a paper behind the catalogue (or a common defect) as a "
             "check on the IR. Below: what the rule fires on, and every finding on the bundled specs (all "
             "severities, `lint: ignore` off) with its verdict. A rule that fired on most of the catalogue "
             "without cause would be a wrong rule; the thresholds below are set so that every finding is a real "
             "property of the network, and the specs that keep one on purpose silence it with `lint: {ignore: [...]}`.",
             "", f"{len(RULES)} rules; {sum(len(g) for _, g, _ in found)} findings on {len(found)} specs.", "",
             "| rule | severity | title | source | specs it fires on |", "|---|---|---|---|---|"]
    for r in RULES.values():
        specs = [name for name, groups, _ in found if any(g.first.rule.id == r.id for g in groups)]
        lines.append(f"| [{r.id}](#{r.id.lower()}) | {r.severity} | {r.title} | {r.source} | {len(specs)} |")
    for r in RULES.values():
        lines += ["", f"## {r.id}", "", f"**{r.title}** ({r.severity}) — {r.source}", "", r.doc, ""]
        rows = [(name, g, root) for name, groups, root in found for g in groups if g.first.rule.id == r.id]
        if not rows:
            lines.append("On the catalogue: no findings.")
            continue
        lines += ["| spec | where | instances | finding | verdict |", "|---|---|--:|---|---|"]
        for name, g, root in rows:
            f = g.first
            lines.append(f"| `{name}` | {_where(f.loc, root)} | {len(g.findings)} | {_cell(f.message)} | "
                         f"{_cell(verdict(r.id, name) or 'UNREVIEWED')} |")
    return "\n".join(lines) + "\n"
