"""The paper's own numbers, as data, each with where it is printed (Barsbey et al., arXiv 2507.17748).

Chapters quote the paper from here, beside their own results, and never type its numbers.
Tab. 1 and Tab. 2 give, per row, the minimum and the maximum of each variable over the
row's LR (or hyperparameter) range *independently*: a row's smallest accuracy and smallest
prunability need not come from the same LR, so the tables give ranges, not directions.
Accuracies are in %, as printed.
"""
from __future__ import annotations

from dataclasses import dataclass

TAB1_COLUMNS = ("lr", "test_acc", "prunability", "act_comp", "csi", "class_sep")
# (dataset, model) -> (min, max) per column, as printed; keys use lrsc's registry names, and the two rows without an
# lrsc counterpart keep descriptive names.
TAB1: dict[tuple[str, str], tuple[tuple[float, float], ...]] = {
    ("mnist_cifar", "fcn"): ((0.001, 0.01), (35.247, 35.369), (0.930, 0.940), (0.191, 0.215), (0.108, 0.136), (0.13, 0.143)),
    ("mnist_cifar", "cnn"): ((0.001, 0.2), (24.507, 41.717), (0.326, 0.902), (0.173, 0.513), (0.079, 0.225), (0.049, 0.149)),
    ("mnist_cifar", "resnet18"): ((0.001, 0.25), (26.233, 47.513), (0.311, 0.737), (0.294, 0.343), (0.225, 0.371), (0.115, 0.255)),
    ("mnist_cifar", "resnet50"): ((0.005, 0.1), (23.287, 34.358), (0.378, 0.515), (0.25, 0.34), (0.143, 0.25), (0.065, 0.143)),
    ("mnist_cifar", "wrn101_2"): ((0.005, 0.1), (24.855, 33.537), (0.418, 0.522), (0.252, 0.34), (0.166, 0.247), (0.082, 0.149)),
    ("celeba", "swin_t"): ((1e-07, 0.0001), (40.889, 48.21), (0.344, 0.609), (0.265, 0.584), (0.122, 0.305), (0.06, 0.164)),
    ("colored_mnist", "fcn"): ((0.001, 0.5), (72.727, 76.11), (0.935, 0.968), (0.285, 0.389), (0.243, 0.381), (0.291, 0.387)),
    ("colored_mnist", "cnn"): ((0.01, 0.35), (88.2, 91.48), (0.532, 0.931), (0.372, 0.643), (0.302, 0.576), (0.376, 0.692)),
    ("colored_mnist", "resnet18"): ((0.001, 0.25), (68.343, 91.543), (0.252, 0.771), (0.381, 0.527), (0.38, 0.63), (0.212, 0.635)),
    ("colored_mnist", "resnet50"): ((0.001, 0.1), (55.687, 86.38), (0.284, 0.489), (0.334, 0.524), (0.198, 0.458), (0.07, 0.509)),
    ("colored_mnist", "resnet50 (PSGD)"): ((1e-6, 0.01), (24.16, 93.09), (0.249, 0.959), (0.334, 1.0), (0.159, 0.888), (0.126, 0.712)),
    ("colored_mnist", "wrn101_2"): ((0.001, 0.25), (61.643, 85.25), (0.258, 0.559), (0.337, 0.787), (0.215, 0.473), (0.084, 0.569)),
    ("moon_star", "fcn"): ((0.01, 0.75), (74.315, 81.156), (0.954, 0.971), (0.375, 0.457), (0.257, 0.34), (0.2, 0.326)),
    ("corrupted_cifar10", "fcn"): ((0.0001, 0.005), (46.92, 51.93), (0.574, 0.847), (0.202, 0.252), (0.131, 0.183), (0.169, 0.182)),
    ("corrupted_cifar10", "cnn"): ((0.001, 0.1), (43.555, 48.503), (0.39, 0.861), (0.189, 0.341), (0.144, 0.387), (0.14, 0.329)),
    ("corrupted_cifar10", "resnet18"): ((0.001, 0.5), (35.153, 47.795), (0.267, 0.803), (0.382, 0.634), (0.266, 0.393), (0.115, 0.205)),
    ("corrupted_cifar10", "resnet50"): ((0.001, 0.1), (36.3, 45.52), (0.391, 0.556), (0.334, 0.475), (0.203, 0.304), (0.081, 0.134)),
    ("corrupted_cifar10", "wrn101_2"): ((0.001, 0.25), (37.827, 47.153), (0.399, 0.559), (0.339, 0.653), (0.215, 0.348), (0.09, 0.189)),
    ("double_mnist", "fcn"): ((0.001, 0.5), (69.287, 72.47), (0.986, 0.999), (0.236, 0.406), (0.22, 0.485), (0.428, 0.481)),
    ("double_mnist", "cnn"): ((0.005, 0.4), (83.987, 94.57), (0.383, 0.916), (0.235, 0.772), (0.187, 0.476), (0.204, 0.55)),
    ("double_mnist", "resnet18"): ((0.001, 0.1), (85.44, 95.577), (0.285, 0.706), (0.306, 0.365), (0.467, 0.602), (0.485, 0.776)),
    ("double_mnist", "resnet50"): ((0.001, 0.1), (42.045, 95.733), (0.228, 0.498), (0.16, 0.256), (0.152, 0.392), (0.172, 0.68)),
    ("double_mnist", "wrn101_2"): ((0.001, 0.1), (43.12, 96.08), (0.195, 0.508), (0.161, 0.298), (0.156, 0.416), (0.188, 0.703)),
    ("parity", "fcn"): ((0.01, 0.75), (55.31, 85.663), (0.56, 0.782), (0.333, 0.679), (0.032, 0.152), (0.008, 0.136)),
}

TAB2_COLUMNS = ("range", "test_acc", "prunability", "csi")
# dataset -> setting -> (min, max) per column. The paper's batch-size range is printed as 1 / batch size.
TAB2: dict[str, dict[str, tuple[tuple[float, float], ...]]] = {
    "colored_mnist": {
        "lr": ((0.001, 0.15), (72.297, 92.203), (0.262, 0.8), (0.441, 0.644)),
        "lr+l2": ((1e-05, 0.001), (92.183, 94.25), (0.79, 0.87), (0.651, 0.848)),
        "batch_size": ((0.01, 0.3333), (68.363, 90.303), (0.253, 0.661), (0.383, 0.587)),
        "momentum": ((0.1, 0.99), (68.38, 91.197), (0.256, 0.748), (0.387, 0.633)),
        "l1": ((1e-05, 0.001), (72.887, 90.347), (0.275, 0.864), (0.458, 0.859)),
        "weight_decay": ((0.0001, 0.05), (71.727, 89.687), (0.263, 0.76), (0.432, 0.873)),
        "focal_gamma": ((0.001, 25.0), (68.203, 91.8), (0.254, 0.645), (0.377, 0.626)),
        "asam_rho": ((0.01, 10.0), (68.723, 90.977), (0.256, 0.522), (0.38, 0.508)),
    },
    "mnist_cifar": {
        "lr": ((0.001, 0.1), (24.327, 47.497), (0.293, 0.69), (0.24, 0.376)),
        "lr+l2": ((1e-06, 0.0001), (46.947, 48.327), (0.677, 0.727), (0.384, 0.497)),
        "batch_size": ((0.01, 0.3333), (25.95, 46.24), (0.29, 0.529), (0.201, 0.262)),
        "momentum": ((0.1, 0.99), (25.887, 46.397), (0.29, 0.666), (0.226, 0.354)),
        "l1": ((1e-05, 0.001), (24.65, 46.097), (0.28, 0.845), (0.24, 0.486)),
        "weight_decay": ((0.0001, 0.075), (24.18, 47.13), (0.287, 0.619), (0.189, 0.533)),
        "focal_gamma": ((0.01, 25.0), (25.87, 40.393), (0.283, 0.597), (0.223, 0.314)),
        "asam_rho": ((0.01, 10.0), (26.3, 34.053), (0.286, 0.769), (0.225, 0.261)),
    },
    "double_mnist": {
        "lr": ((0.001, 0.25), (88.13, 96.39), (0.282, 0.801), (0.529, 0.631)),
        "lr+l2": ((1e-05, 0.001), (96.68, 97.75), (0.664, 0.89), (0.641, 0.836)),
        "batch_size": ((0.01, 0.3333), (85.39, 96.62), (0.279, 0.514), (0.375, 0.471)),
        "momentum": ((0.1, 0.99), (85.58, 95.71), (0.278, 0.755), (0.471, 0.57)),
        "l1": ((1e-06, 0.001), (87.64, 95.87), (0.28, 0.932), (0.517, 0.914)),
        "weight_decay": ((0.0001, 0.05), (86.83, 97.08), (0.285, 0.727), (0.504, 0.896)),
        "focal_gamma": ((0.001, 25.0), (85.01, 95.89), (0.275, 0.661), (0.456, 0.58)),
        "asam_rho": ((0.01, 10.0), (85.71, 95.82), (0.277, 0.626), (0.467, 0.488)),
    },
}


# The paper's five contributions, in its words (Sec. 1), by number.
CONTRIBUTIONS_SOURCE = "Sec. 1, the list of key contributions"
CONTRIBUTIONS: dict[int, str] = {
    1: "large LRs simultaneously and consistently promote both compressibility and robustness specifically to SCs "
       "across a wide range of architectures, datasets, and training schemes",
    2: "these effects are accompanied by improved core feature utilization, class separation, and compressibility in "
       "the learned representations",
    3: "large LRs produce a unique combination of the aforementioned desirable properties, in comparison to other "
       "major hyperparameters and regularizers",
    4: "the robustness against SCs that large LRs confer contributes to their previously documented success in "
       "standard generalization tasks",
    5: "the importance of confident mispredictions of bias-conflicting samples under high LRs",
}


@dataclass(frozen=True)
class Quote:
    """A value or setting the paper states, with where it states it."""

    value: object
    source: str


# Values and settings of the paper that chapters set beside their own, by a name chapters use.
QUOTES: dict[str, Quote] = {
    "fig18_class_dominant": Quote((0.554, 0.859), "supplement, Fig. 18 (top): final shares of class-dominant filters, "
                                                  "ResNet18 on Colored MNIST, for its two LRs (which is which is not "
                                                  "fixed by our copy of the text)"),
    "fig18_setting": Quote("ResNet18 on Colored MNIST (pooled last-layer filters)", "supplement, Fig. 18 (top)"),
    "fig12_setting": Quote("ResNet18 runs pooled across datasets", "Sec. 6, Fig. 12"),
    "fig13_setting": Quote("Colored MNIST and CIFAR-10", "Sec. 6, Fig. 13"),
    "step_schedule": Quote("the initial LR multiplied by 0.1 after iteration 1000 (Colored MNIST, ResNet18)",
                           "supplement D.4, Fig. 23"),
    "celeba_coding": Quote("hair colour is the spurious feature and gender the core feature",
                           "Sec. 4.2, datasets"),
    "swin_protocol": Quote("Swin-T from ImageNet-1K weights, AdamW, batch 16", "Sec. 4.2"),
    "soups": Quote("creating a model soup is another way of obtaining robustness vs. compressibility "
                   "disentanglement", "supplement D.4, Fig. 30 (right)"),
    "switch": Quote("the effects of LR are almost completely integrated early (ResNet18, CIFAR-10)",
                    "supplement D.4, Fig. 30 (left)"),
    "corrupted_cifar10": Quote("Corrupted CIFAR-10 results are in the supplement", "supplement D.4, Fig. 16"),
    "mechanism_section": Quote("On the mechanism of large LRs", "Sec. 6"),
    "tab2_batch_size": Quote("the batch-size range is printed as 1 / batch size", "supplement D.3, Tab. 2"),
    "compute_hours": Quote(400, "supplement C: the experiments \"were run on 4 NVIDIA A100-PCIE-40GB GPUs for 400 "
                                "total hours of computation\""),
    "compute_devices": Quote("4 NVIDIA A100-PCIE-40GB GPUs", "supplement C"),
}


def tab1(dataset: str, model: str) -> dict[str, tuple[float, float]] | None:
    """The paper's Tab. 1 row for ``(dataset, model)``, ``{column: (min, max)}``, or None."""
    row = TAB1.get((dataset, model))
    return dict(zip(TAB1_COLUMNS, row)) if row else None


def tab2(dataset: str) -> dict[str, dict[str, tuple[float, float]]] | None:
    """The paper's Tab. 2 rows for ``dataset``, ``{setting: {column: (min, max)}}``, or None."""
    rows = TAB2.get(dataset)
    return {key: dict(zip(TAB2_COLUMNS, row)) for key, row in rows.items()} if rows else None


def span(pair: tuple[float, float], percent: bool = False, digits: int = 3) -> str:
    """A printed range, e.g. ``72.7–76.1%`` or ``0.935–0.968``: the min and the max, not a direction."""
    lo, hi = pair
    return f"{lo:.1f}–{hi:.1f}%" if percent else f"{lo:.{digits}g}–{hi:.{digits}g}"


# Rows whose accuracy column is worst-group accuracy (the naturalistic sets), not unbiased accuracy.
TAB1_WORST_GROUP = {("celeba", "swin_t")}
TAB1_NAMES = {"test_acc": "unbiased accuracy", "prunability": "prunability", "act_comp": "activation compressibility",
              "csi": "CSI", "class_sep": "class separation"}


def tab1_text(dataset: str, model: str, columns: tuple[str, ...] = ("test_acc", "prunability", "act_comp")) -> str:
    """The paper's Tab. 1 row for ``(dataset, model)`` in words, e.g. ``LRs 0.01–0.75: unbiased accuracy
    55.3–85.7%, prunability 0.56–0.782``, or a sentence saying the paper has no such row."""
    row = tab1(dataset, model)
    if row is None:
        return "no row (the paper does not report this dataset and model)"
    names = {**TAB1_NAMES, **({"test_acc": "worst-group accuracy"} if (dataset, model) in TAB1_WORST_GROUP else {})}
    parts = [f"{names[c]} {span(row[c], c == 'test_acc')}" for c in columns]
    return f"LRs {span(row['lr'])}: " + ", ".join(parts)
