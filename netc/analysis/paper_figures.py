"""The papers' own architecture tables, typed in as printed, for the paper layouts to name what
they recognise and to set the papers' figures beside netc's exact ones. Data, not derived from
netc: where a paper's figure disagrees with the network it describes, the figure stays as
printed and a note says what is known about the difference."""
from __future__ import annotations

# Simonyan & Zisserman 2014, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
# Table 1: each configuration's layers between the max pools, then its fully connected layers
_FC = ["FC-4096", "FC-4096", "FC-1000"]
VGG_TABLE1 = {
    "A": [["conv3-64"], ["conv3-128"], ["conv3-256"] * 2, ["conv3-512"] * 2, ["conv3-512"] * 2, _FC],
    "A-LRN": [["conv3-64", "LRN"], ["conv3-128"], ["conv3-256"] * 2, ["conv3-512"] * 2, ["conv3-512"] * 2, _FC],
    "B": [["conv3-64"] * 2, ["conv3-128"] * 2, ["conv3-256"] * 2, ["conv3-512"] * 2, ["conv3-512"] * 2, _FC],
    "C": [["conv3-64"] * 2, ["conv3-128"] * 2, ["conv3-256"] * 2 + ["conv1-256"], ["conv3-512"] * 2 + ["conv1-512"],
          ["conv3-512"] * 2 + ["conv1-512"], _FC],
    "D": [["conv3-64"] * 2, ["conv3-128"] * 2, ["conv3-256"] * 3, ["conv3-512"] * 3, ["conv3-512"] * 3, _FC],
    "E": [["conv3-64"] * 2, ["conv3-128"] * 2, ["conv3-256"] * 4, ["conv3-512"] * 4, ["conv3-512"] * 4, _FC],
}

# Szegedy et al. 2015, "Going Deeper with Convolutions" (CVPR), Table 1, row by row: type, patch
# size/stride, output size, depth, #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj, params, ops
GOOGLENET_TABLE1 = [
    ("convolution", "7×7/2", "112×112×64", "1", "", "", "", "", "", "", "2.7K", "34M"),
    ("max pool", "3×3/2", "56×56×64", "0", "", "", "", "", "", "", "", ""),
    ("convolution", "3×3/1", "56×56×192", "2", "", "64", "192", "", "", "", "112K", "360M"),
    ("max pool", "3×3/2", "28×28×192", "0", "", "", "", "", "", "", "", ""),
    ("inception (3a)", "", "28×28×256", "2", "64", "96", "128", "16", "32", "32", "159K", "128M"),
    ("inception (3b)", "", "28×28×480", "2", "128", "128", "192", "32", "96", "64", "380K", "304M"),
    ("max pool", "3×3/2", "14×14×480", "0", "", "", "", "", "", "", "", ""),
    ("inception (4a)", "", "14×14×512", "2", "192", "96", "208", "16", "48", "64", "364K", "73M"),
    ("inception (4b)", "", "14×14×512", "2", "160", "112", "224", "24", "64", "64", "437K", "88M"),
    ("inception (4c)", "", "14×14×512", "2", "128", "128", "256", "24", "64", "64", "463K", "100M"),
    ("inception (4d)", "", "14×14×528", "2", "112", "144", "288", "32", "64", "64", "580K", "119M"),
    ("inception (4e)", "", "14×14×832", "2", "256", "160", "320", "32", "128", "128", "840K", "170M"),
    ("max pool", "3×3/2", "7×7×832", "0", "", "", "", "", "", "", "", ""),
    ("inception (5a)", "", "7×7×832", "2", "256", "160", "320", "32", "128", "128", "1072K", "54M"),
    ("inception (5b)", "", "7×7×1024", "2", "384", "192", "384", "48", "128", "128", "1388K", "71M"),
    ("avg pool", "7×7/1", "1×1×1024", "0", "", "", "", "", "", "", "", ""),
    ("dropout (40%)", "", "1×1×1024", "0", "", "", "", "", "", "", "", ""),
    ("linear", "", "1×1×1000", "1", "", "", "", "", "", "", "1000K", "1M"),
    ("softmax", "", "1×1×1000", "0", "", "", "", "", "", "", "", ""),
]

# what is known about the figures of Table 1 that the layers do not give (by row type)
GOOGLENET_NOTES = {
    "convolution 7×7/2": "conv 7×7/2: the paper prints 2.7K params and 34M ops, consistent with each other "
                         "(2.7K × 112×112 positions = 34M) but not with a 7×7 conv from 3 to 64 channels: "
                         "7×7×3×64 = 9.4K weights, 118M multiply-accumulates",
    "convolution 3×3/1": "conv 3×3/1: the paper's 112K is about the 3×3 conv alone (3×3×64×192 = 110.6K); "
                         "with its 1×1 reduce (64×64 = 4.1K) the row holds 114.7K",
    "inception (4c)": "inception (4c): the paper's 463K params contradict its own 100M ops "
                      "(100M / 14×14 positions = 510K)",
    "inception (5a)": "inception (5a): the paper's 54M ops contradict its own 1072K params "
                      "(1072K × 7×7 positions = 52.5M)",
    "linear": "linear: 1024 inputs × 1000 outputs = 1024K weights; the paper prints 1000K",
}
GOOGLENET_GENERAL_NOTE = ("the other modules' printed params are 2-5% below the exact weight counts, and 4a's "
                          "ops 1% below; the paper does not say how it counted")
