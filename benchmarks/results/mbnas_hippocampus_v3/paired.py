"""Per-case paired differences of the comparison's rows against the U-Net (the searches' start) and between rows:
each case's Dice is the mean over its classes, then over the retraining seeds.

    python benchmarks/results/mbnas_hippocampus_v3/paired.py benchmarks/results/mbnas_hippocampus_v3/results.json \
        benchmarks/results/mbnas_hippocampus_v3/search_seed{1,2}/results.json

Further results files (other search seeds) compare their MB-NAS row against the first file's U-Net.
"""
import json
import sys

import numpy as np

from vnas_monai.evaluation.paired import format_paired, paired_difference


def as_result(res, name):
    runs = res[name]["runs"]
    cases = [c["case"] for c in runs[0]["cases"]]
    records = [{"case": c, "dice": list(np.mean([r["cases"][i]["dice"] for r in runs], axis=0))}
               for i, c in enumerate(cases)]
    return {"method": name, "records": records}


if __name__ == "__main__":
    res = json.load(open(sys.argv[1]))
    pairs = [(m, "U-Net") for m in ("MB-NAS", "Micro-NAS", "Macro-NAS", "ResU-Net")]
    for a, b in pairs + [("MB-NAS", "ResU-Net"), ("MB-NAS", "Micro-NAS")]:
        print(format_paired(paired_difference(as_result(res, a), [as_result(res, b)])))
    for path in sys.argv[2:]:
        other = as_result(json.load(open(path)), "MB-NAS")
        print(f"{path}: " + format_paired(paired_difference(other, [as_result(res, "U-Net")])))
