#!/usr/bin/env python3
"""Reference classifiers ("peers") for Tessera's EEG epochs manifests.

  python benchmarks/eeg_peers.py MANIFEST [--seeds 0 1 2 3 4] [--rate 200] [--epochs N | --minutes M]
                                 [--peers bandpower shallow eegnet] [--threads 1] [--out results.csv]

Manifest: CSV with header `path,label,split,source,onset_s,duration_s[,extra...]` (see
eeg_make_manifest.py); `source` is relative to the manifest's folder or absolute; `split` is train/test.

Preprocessing (per source file, cached): all signals of the EDF except annotation signals, physical
values converted to uV, band-pass 0.5-45 Hz (Butterworth order 4, sos, sosfiltfilt) on the whole
recording, resample_poly to --rate, then the windows are cut (start = round(onset*rate),
length = round(duration*rate)).

Peers
  bandpower : log band power per channel (delta 1-4, theta 4-8, alpha 8-13, beta 13-30, gamma 30-45 Hz;
              Welch, 1 s Hann segments, 50 % overlap), standardised on train, LogisticRegression with
              balanced class weights; C chosen by 5-fold CV on train (GroupKFold by `subject` if the
              column exists with >= 5 subjects in train, else by recording (`source`, as Tessera's
              `epochs` manifests have no subject column) with >= 5 recordings, else
              StratifiedKFold) on balanced accuracy.
              Deterministic: fitted once, the same row is reported for every seed.
  shallow   : braindecode ShallowFBCSPNet, from scratch.
  eegnet    : braindecode EEGNet (EEGNetv4 in older braindecode), from scratch.
  Networks: per-channel standardisation with train statistics, AdamW (lr --lr, weight decay --wd),
  cosine learning-rate schedule over the budget, cross-entropy with balanced class weights, batch
  --batch-size, --epochs epochs (or --minutes: the epoch count is set from the time of the first
  epoch), seeded with torch.manual_seed / numpy; the final model is evaluated on test.

Output: a table, rows `peer,seed,balanced_accuracy,accuracy,n_train,n_test,seconds` in --out, and
mean +- sd (sample sd, ddof=1) per peer.
"""
import argparse
import json
import os
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--rate", type=float, default=200.0, help="resampling rate in Hz (default 200)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="training epochs per network (default 80: measured ~1.6 min ShallowFBCSPNet, ~1.4 min EEGNet per seed on 1 shared thread for eegmat; 120 or --minutes 2.5 gives 2-3 min)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="training budget per network and seed in minutes (sets the epoch count from the first epoch)")
    ap.add_argument("--peers", nargs="+", default=["bandpower", "shallow", "eegnet"],
                    choices=["bandpower", "shallow", "eegnet"])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=1e-2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="CSV of per-seed rows")
    ap.add_argument("--quiet", action="store_true", help="no per-epoch log")
    ap.add_argument("--json", action="store_true",
                    help="also print one JSON line per (peer, seed): run, seed, balanced_accuracy, ... (tessera-bench)")
    a = ap.parse_args()
    if a.epochs is not None and a.minutes is not None:
        ap.error("give --epochs or --minutes, not both")
    if a.epochs is None and a.minutes is None:
        a.epochs = 80
    return a


ARGS = parse_args()
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, str(ARGS.threads))

import warnings  # noqa: E402
from fractions import Fraction  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyedflib  # noqa: E402
from scipy import signal  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, balanced_accuracy_score  # noqa: E402
from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

BANDS = [("delta", 1, 4), ("theta", 4, 8), ("alpha", 8, 13), ("beta", 13, 30), ("gamma", 30, 45)]
UNIT_TO_UV = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}


def log(*x):
    print(*x, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- data

def load_recording(path, rate):
    """All non-annotation signals of an EDF in uV, band-passed on the whole recording, resampled."""
    with pyedflib.EdfReader(path) as r:
        n = r.signals_in_file  # pyedflib leaves out the EDF+ annotation signal
        labels = r.getSignalLabels()
        keep = [i for i in range(n) if "annotation" not in labels[i].lower()]
        fs = {r.getSampleFrequency(i) for i in keep}
        if len(fs) != 1:
            raise SystemExit(f"{path}: channels have different sample rates {sorted(fs)}")
        fs = fs.pop()
        rows = []
        for i in keep:
            unit = r.getPhysicalDimension(i).strip().lower()
            if unit not in UNIT_TO_UV:
                raise SystemExit(f"{path}: channel {labels[i]!r} has unit {unit!r}")
            rows.append(r.readSignal(i) * UNIT_TO_UV[unit])
    x = np.stack(rows)  # (C, T) float64, uV
    sos = signal.butter(4, [0.5, 45.0], btype="bandpass", fs=fs, output="sos")
    x = signal.sosfiltfilt(sos, x, axis=-1)
    if abs(fs - rate) > 1e-9:
        fr = Fraction(rate / fs).limit_denominator(1000)
        x = signal.resample_poly(x, fr.numerator, fr.denominator, axis=-1)
    return x, [labels[i] for i in keep], fs


def load_manifest(path, rate):
    m = pd.read_csv(path, dtype={"label": str, "split": str, "source": str})
    need = ["label", "split", "source", "onset_s", "duration_s"]
    miss = [c for c in need if c not in m.columns]
    if miss:
        raise SystemExit(f"{path}: missing columns {miss}")
    base = os.path.dirname(os.path.abspath(path))
    m["file"] = [s if os.path.isabs(s) else os.path.normpath(os.path.join(base, s)) for s in m["source"]]
    cache, chans = {}, None
    xs, keep = [], []
    n_times = {int(round(d * rate)) for d in m["duration_s"]}
    if len(n_times) != 1:
        raise SystemExit(f"windows have different lengths at {rate} Hz: {sorted(n_times)} samples")
    n_times = n_times.pop()
    t0 = time.perf_counter()
    for k, row in enumerate(m.itertuples(index=False)):
        if row.file not in cache:
            cache[row.file] = load_recording(row.file, rate)
            if chans is None:
                chans = cache[row.file][1]
            elif cache[row.file][1] != chans:
                raise SystemExit(f"{row.file}: channels {cache[row.file][1]} differ from {chans}")
        x = cache[row.file][0]
        s = int(round(row.onset_s * rate))
        if s < 0 or s + n_times > x.shape[1]:
            log(f"skip window {row.file}@{row.onset_s}s: outside the recording ({x.shape[1] / rate:.2f} s)")
            continue
        xs.append(x[:, s:s + n_times])
        keep.append(k)
    m = m.iloc[keep].reset_index(drop=True)
    X = np.stack(xs).astype(np.float32)
    log(f"loaded {len(m)} windows from {len(cache)} files in {time.perf_counter() - t0:.1f} s: "
        f"{X.shape[1]} channels x {X.shape[2]} samples at {rate:g} Hz")
    return m, X, chans


# ----------------------------------------------------------------------------- peers

def bandpower_features(X, rate):
    f, p = signal.welch(X.astype(np.float64), fs=rate, nperseg=int(round(rate)), axis=-1)  # 1 s Hann, 50 %
    df = f[1] - f[0]
    feats = []
    for _, lo, hi in BANDS:
        sel = (f >= lo) & (f < hi)
        feats.append(np.log(p[..., sel].sum(-1) * df + 1e-12))
    return np.stack(feats, -1).reshape(len(X), -1)  # (N, C*5), channel-major


def run_bandpower(Xtr, ytr, Xte, yte, groups, rate):
    t0 = time.perf_counter()
    Ftr, Fte = bandpower_features(Xtr, rate), bandpower_features(Xte, rate)
    pipe = make_pipeline(StandardScaler(),
                         LogisticRegression(class_weight="balanced", max_iter=10000))
    grid = {"logisticregression__C": list(np.logspace(-4, 2, 13))}
    if groups is not None and len(np.unique(groups)) >= 5:
        cv, kw, cvname = GroupKFold(n_splits=5), {"groups": groups}, "GroupKFold"
    else:
        cv, kw, cvname = StratifiedKFold(n_splits=5), {}, "StratifiedKFold"
    gs = GridSearchCV(pipe, grid, scoring="balanced_accuracy", cv=cv, n_jobs=1)
    gs.fit(Ftr, ytr, **kw)
    pred = gs.predict(Fte)
    secs = time.perf_counter() - t0
    C = gs.best_params_["logisticregression__C"]
    log(f"bandpower: {Ftr.shape[1]} features, {cvname}, best C={C:.3g} (cv bal.acc {gs.best_score_:.3f})")
    return balanced_accuracy_score(yte, pred), accuracy_score(yte, pred), secs, {"C": C}


def make_net(name, n_chans, n_outputs, n_times):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import braindecode.models as bm
    if name == "shallow":
        return bm.ShallowFBCSPNet(n_chans=n_chans, n_outputs=n_outputs, n_times=n_times, final_conv_length="auto")
    cls = getattr(bm, "EEGNet", None) or getattr(bm, "EEGNetv4")
    return cls(n_chans=n_chans, n_outputs=n_outputs, n_times=n_times, final_conv_length="auto")


def run_net(name, Xtr, ytr, Xte, yte, seed, n_classes):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    np.random.seed(seed)
    t0 = time.perf_counter()
    mean = Xtr.mean(axis=(0, 2), keepdims=True)
    std = Xtr.std(axis=(0, 2), keepdims=True) + 1e-6
    xtr = torch.from_numpy(((Xtr - mean) / std).astype(np.float32))
    xte = torch.from_numpy(((Xte - mean) / std).astype(np.float32))
    ytr_t = torch.from_numpy(ytr.astype(np.int64))
    counts = np.bincount(ytr, minlength=n_classes).astype(np.float64)
    w = torch.tensor(len(ytr) / (n_classes * np.maximum(counts, 1)), dtype=torch.float32)

    net = make_net(name, xtr.shape[1], n_classes, xtr.shape[2])
    opt = torch.optim.AdamW(net.parameters(), lr=ARGS.lr, weight_decay=ARGS.wd)
    gen = torch.Generator().manual_seed(seed)
    bs = ARGS.batch_size
    n = len(xtr)

    def one_epoch():
        net.train()
        perm = torch.randperm(n, generator=gen)
        tot, cnt = 0.0, 0
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            if len(idx) < 2:  # batch norm needs > 1 sample
                continue
            out = net(xtr[idx])
            loss = F.cross_entropy(out, ytr_t[idx], weight=w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
            cnt += len(idx)
        sched.step()
        return tot / max(cnt, 1)

    if ARGS.minutes is not None:
        # time the first epoch at the initial learning rate, then fix the schedule length
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
        te = time.perf_counter()
        loss = one_epoch()
        ep_s = time.perf_counter() - te
        epochs = max(1, int(ARGS.minutes * 60 / ep_s))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs - 1))
        done = 1
    else:
        epochs = ARGS.epochs
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        done = 0
    for e in range(done, epochs):
        loss = one_epoch()
        if not ARGS.quiet and (e + 1) % max(1, epochs // 5) == 0:
            log(f"  {name} seed {seed} epoch {e + 1}/{epochs} loss {loss:.4f} ({time.perf_counter() - t0:.0f} s)")
    train_s = time.perf_counter() - t0

    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(xte[i:i + 256]).argmax(1) for i in range(0, len(xte), 256)]).numpy()
    secs = time.perf_counter() - t0
    n_params = sum(p.numel() for p in net.parameters())
    return (balanced_accuracy_score(yte, pred), accuracy_score(yte, pred), secs,
            {"epochs": epochs, "train_s": round(train_s, 1), "params": n_params, "final_loss": round(loss, 4)})


# ----------------------------------------------------------------------------- main

def main():
    a = ARGS
    import torch
    torch.set_num_threads(a.threads)
    t_all = time.perf_counter()
    m, X, chans = load_manifest(a.manifest, a.rate)
    classes = sorted(m["label"].unique())
    y = m["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    tr = (m["split"] == "train").to_numpy()
    te = (m["split"] == "test").to_numpy()
    if not tr.any() or not te.any():
        raise SystemExit("manifest needs both train and test rows")
    gcol = "subject" if "subject" in m.columns else "source" if "source" in m.columns else None
    groups = m.loc[tr, gcol].astype(str).to_numpy() if gcol else None
    Xtr, ytr, Xte, yte = X[tr], y[tr], X[te], y[te]
    log(f"classes {classes}; train {np.bincount(ytr, minlength=len(classes)).tolist()}, "
        f"test {np.bincount(yte, minlength=len(classes)).tolist()}; threads {a.threads}")

    results = []
    if "bandpower" in a.peers:
        ba, acc, secs, info = run_bandpower(Xtr, ytr, Xte, yte, groups, a.rate)
        for s in a.seeds:
            results.append(dict(peer="bandpower_logreg", seed=s, balanced_accuracy=ba, accuracy=acc,
                                n_train=int(tr.sum()), n_test=int(te.sum()), seconds=round(secs, 2)))
        log(f"bandpower_logreg: bal.acc {ba:.4f} acc {acc:.4f} ({secs:.1f} s) {info}")
    for peer in [p for p in ("shallow", "eegnet") if p in a.peers]:
        pname = {"shallow": "ShallowFBCSPNet", "eegnet": "EEGNet"}[peer]
        for s in a.seeds:
            ba, acc, secs, info = run_net(peer, Xtr, ytr, Xte, yte, s, len(classes))
            results.append(dict(peer=pname, seed=s, balanced_accuracy=ba, accuracy=acc,
                                n_train=int(tr.sum()), n_test=int(te.sum()), seconds=round(secs, 2)))
            log(f"{pname} seed {s}: bal.acc {ba:.4f} acc {acc:.4f} ({secs:.1f} s) {info}")

    if a.json:
        for r in results:
            print(json.dumps({"run": r["peer"], "features": "raw signal" if r["peer"] != "bandpower_logreg" else "band power",
                              **{k: v for k, v in r.items() if k != "peer"}}), flush=True)
    df = pd.DataFrame(results)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print()
    for peer, g in df.groupby("peer", sort=False):
        sd = g["balanced_accuracy"].std(ddof=1) if len(g) > 1 else 0.0
        print(f"{peer:18s} balanced_accuracy {g['balanced_accuracy'].mean():.4f} +- {sd:.4f}  "
              f"accuracy {g['accuracy'].mean():.4f}  seconds/seed {g['seconds'].mean():.1f}  (n={len(g)})")
    print(f"total wall {time.perf_counter() - t_all:.1f} s")
    if a.out:
        df.to_csv(a.out, index=False, float_format="%.6f")
        log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
