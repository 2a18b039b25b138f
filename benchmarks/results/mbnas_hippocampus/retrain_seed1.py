"""Seed 1 retrains of U-Net, ResU-Net and the MB-NAS best (the noise of one retraining)."""
import json
import sys

from vnas_monai.data import fold_datalists
from vnas_monai.spaces.mbnas import MBNASEncoding
from vnas_monai.spaces.mbnas.compare import _finite, evaluate_encoding, reference_encodings
from vnas_monai.spaces.mbnas.trial import SliceTrial

out = sys.argv[1]
sp = fold_datalists('/work/shared/data/msd_hippocampus', fold=0, num_folds=5, seed=0, max_cases=100)
trial = SliceTrial(sp['trainval'], 1, 3, 5, 0, 2, (48, 64), None, None, 32, 0.01, epochs=8, steps_per_epoch=16,
                   init_channels=8, flip_axes=(0,))
encs = {**reference_encodings(), 'MB-NAS': MBNASEncoding.load(f'{out}/search_mbnas/arch.json')}
res = {}
for name, enc in encs.items():
    r = evaluate_encoding(trial, enc, list(trial.cases), sp['test'], seed=1, epochs=24)
    res[name] = {k: r[k] for k in ('dice', 'hd95_mm', 'surface_dice', 'train_s')}
    print(name, res[name], flush=True)
open(f'{out}/retrain_seed1.json', 'w').write(json.dumps(_finite(res), indent=1) + '\n')
