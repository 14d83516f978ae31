#!/usr/bin/env python3
"""Generate the golden values for tessera-eval's classification, multi-label and regression
metrics and probes (evaluation/tests/golden/eval.json), checked by
evaluation/tests/eval_golden.rs.

References (scikit-learn):
- balanced_accuracy_score, f1_score(average="macro"), accuracy_score;
- average_precision_score (per class, micro) and roc_auc_score (per class; macro where every
  class has both positives and negatives), on scores with many ties. tessera-eval's macro mAP
  and macro AUROC skip classes whose AP / AUROC is undefined (no positives; no positives or
  no negatives); the expected macro values here are the mean over the defined classes,
  computed from scikit-learn's per-class values;
- r2_score, mean_absolute_error (including a constant y_true: force_finite);
- Ridge(alpha = n * l2) on StandardScaler output: tessera-eval's ridge probe minimises
  mean squared error + l2 * |w|^2 on standardised features;
- LogisticRegression(C = 1 / (n * l2)) on StandardScaler output, multinomial (the linear
  probe) and one binary model per class (the one-vs-rest multi-label probe): tessera-eval
  minimises mean log loss + l2 / 2 * |W|^2.

Features are drawn as float32 (what tessera-eval's `Features` holds) and stored exactly.
Made with scikit-learn 1.9.1 / numpy 2.4.6 (the versions are also written into the file):

    python3 -m venv /tmp/skvenv && /tmp/skvenv/bin/pip install scikit-learn numpy
    /tmp/skvenv/bin/python scripts/golden_eval.py
"""

import json
import os

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
)
from sklearn.preprocessing import StandardScaler

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "evaluation", "tests", "golden", "eval.json")
SEED = 20263


def f32_matrix(rng, n, d, scale=1.0, shift=0.0):
    x = (rng.standard_normal((n, d)) * scale + shift).astype(np.float32)
    return x


def classification_cases(rng):
    cases = []
    # 1. Random labels, 5 classes.
    t = rng.integers(0, 5, 40)
    p = np.where(rng.random(40) < 0.6, t, rng.integers(0, 5, 40))
    cases.append(("random5", t, p, 5))
    # 2. Imbalanced: a majority class, a rare class, one class only ever predicted.
    t = np.array([0] * 20 + [1] * 5 + [2] * 2)
    p = np.array([0] * 17 + [1] * 2 + [3] + [1] * 3 + [0] * 2 + [2, 0])
    cases.append(("imbalanced", t, p, 4))
    # 3. More classes than appear anywhere (n_classes = 7).
    t = rng.integers(0, 4, 30)
    p = rng.integers(1, 6, 30)
    cases.append(("unused_classes", t, p, 7))
    out = []
    for name, t, p, c in cases:
        out.append(
            {
                "name": name,
                "n_classes": c,
                "y_true": t.tolist(),
                "y_pred": p.tolist(),
                "accuracy": float(accuracy_score(t, p)),
                "macro_f1": float(f1_score(t, p, average="macro")),
                "balanced_accuracy": float(balanced_accuracy_score(t, p)),
            }
        )
    return out


def ranking_case(name, y, s):
    n, c = y.shape
    ap, auc = [], []
    for k in range(c):
        col = y[:, k]
        ap.append(float(average_precision_score(col, s[:, k])) if col.any() else None)
        auc.append(float(roc_auc_score(col, s[:, k])) if 0 < col.sum() < n else None)
    defined_ap = [v for v in ap if v is not None]
    defined_auc = [v for v in auc if v is not None]
    case = {
        "name": name,
        "n": n,
        "n_classes": c,
        "y": y.astype(int).ravel().tolist(),
        "scores": s.ravel().tolist(),
        "ap_per_class": ap,
        "auroc_per_class": auc,
        "map_micro": float(average_precision_score(y, s, average="micro")),
        "map_macro": float(np.mean(defined_ap)),
        "auroc_macro": float(np.mean(defined_auc)) if defined_auc else None,
    }
    if all(v is not None for v in auc):
        # Every class defined: scikit-learn's own macro averages must agree.
        case["sklearn_map_macro"] = float(average_precision_score(y, s, average="macro"))
        case["sklearn_auroc_macro"] = float(roc_auc_score(y, s, average="macro"))
    return case


def ranking_cases(rng):
    out = []
    # 1. Scores with one decimal (many ties), informative for some classes; class 3 has no
    #    positives, class 4 only positives.
    n, c = 30, 5
    y = rng.random((n, c)) < 0.35
    y[:, 3] = False
    y[:, 4] = True
    s = np.round(np.clip(0.5 * y + 0.6 * rng.random((n, c)), 0, 1), 1)
    out.append(ranking_case("ties_and_undefined", y, s))
    # 2. Every class defined, continuous scores with a few exact ties.
    n, c = 40, 4
    y = rng.random((n, c)) < 0.4
    y[0, :] = True
    y[1, :] = False
    s = rng.standard_normal((n, c)) + 0.8 * y
    s[5:9, 0] = s[4, 0]
    s[10:20, 2] = np.round(s[10:20, 2])
    out.append(ranking_case("all_defined", y, s))
    # 3. Binary-size case: all scores tied in one class, perfect in another.
    n, c = 12, 2
    y = np.zeros((n, c), bool)
    y[::3, 0] = True
    y[:5, 1] = True
    s = np.stack([np.full(n, 0.25), -np.arange(n, dtype=float)], axis=1)
    out.append(ranking_case("all_tied_and_perfect", y, s))
    return out


def regression_cases(rng):
    out = []
    t = rng.standard_normal(25) * 3 + 1
    p = t + rng.standard_normal(25)
    out.append(("noisy", t, p))
    t = rng.standard_normal(10)
    out.append(("anti", t, -t + 0.1))
    out.append(("constant_truth_imperfect", np.full(6, 2.5), np.array([2.5, 2.5, 2.0, 2.5, 3.0, 2.5])))
    out.append(("constant_truth_perfect", np.full(4, -1.0), np.full(4, -1.0)))
    return [
        {
            "name": name,
            "y_true": t.tolist(),
            "y_pred": p.tolist(),
            "r2": float(r2_score(t, p)),
            "mae": float(mean_absolute_error(t, p)),
        }
        for name, t, p in out
    ]


def standardise(x_train, x_test):
    sc = StandardScaler().fit(x_train.astype(np.float64))
    return sc.transform(x_train.astype(np.float64)), sc.transform(x_test.astype(np.float64))


def ridge_cases(rng):
    out = []
    for name, n, d, l2 in [("primal", 60, 7, 0.03), ("dual", 9, 20, 0.2)]:
        x = f32_matrix(rng, n, d, scale=np.arange(1, d + 1), shift=0.5)
        beta = rng.standard_normal(d)
        y = x.astype(np.float64) @ beta + 2.0 + 0.3 * rng.standard_normal(n)
        xt = f32_matrix(rng, 5, d, scale=np.arange(1, d + 1), shift=0.5)
        xs, xts = standardise(x, xt)
        m = Ridge(alpha=n * l2, solver="cholesky").fit(xs, y)
        out.append(
            {
                "name": name,
                "n": n,
                "d": d,
                "l2": l2,
                "x": x.astype(np.float64).ravel().tolist(),
                "y": y.tolist(),
                "x_test": xt.astype(np.float64).ravel().tolist(),
                "coef": m.coef_.tolist(),
                "intercept": float(m.intercept_),
                "pred_test": m.predict(xts).tolist(),
            }
        )
    return out


def logistic_cases(rng):
    n, d, c, l2 = 80, 5, 3, 0.02
    means = 1.5 * rng.standard_normal((c, d))
    labels = rng.integers(0, c, n)
    x = (means[labels] + rng.standard_normal((n, d))).astype(np.float32)
    xt = (means[rng.integers(0, c, 6)] + rng.standard_normal((6, d))).astype(np.float32)
    xs, xts = standardise(x, xt)
    m = LogisticRegression(C=1.0 / (n * l2), tol=1e-12, max_iter=100000).fit(xs, labels)
    multinomial = {
        "n": n,
        "d": d,
        "n_classes": c,
        "l2": l2,
        "x": x.astype(np.float64).ravel().tolist(),
        "y": labels.tolist(),
        "x_test": xt.astype(np.float64).ravel().tolist(),
        "proba_test": m.predict_proba(xts).ravel().tolist(),
    }
    # One-vs-rest on multi-label targets derived from the blobs.
    y = np.stack([labels == 0, labels != 1, (labels == 2) ^ (rng.random(n) < 0.1)], axis=1)
    proba = []
    for k in range(y.shape[1]):
        mk = LogisticRegression(C=1.0 / (n * l2), tol=1e-12, max_iter=100000).fit(xs, y[:, k])
        proba.append(mk.predict_proba(xts)[:, 1])
    one_vs_rest = {
        "n": n,
        "d": d,
        "n_classes": y.shape[1],
        "l2": l2,
        "x": x.astype(np.float64).ravel().tolist(),
        "y": y.astype(int).ravel().tolist(),
        "x_test": xt.astype(np.float64).ravel().tolist(),
        "proba_test": np.stack(proba, axis=1).ravel().tolist(),
    }
    return multinomial, one_vs_rest


def main():
    rng = np.random.default_rng(SEED)
    classification = classification_cases(rng)
    ranking = ranking_cases(rng)
    regression = regression_cases(rng)
    ridge = ridge_cases(rng)
    multinomial, one_vs_rest = logistic_cases(rng)
    golden = {
        "reference": f"scikit-learn {sklearn.__version__}, numpy {np.__version__}",
        "seed": SEED,
        "classification": classification,
        "ranking": ranking,
        "regression": regression,
        "ridge": ridge,
        "logistic_multinomial": multinomial,
        "logistic_one_vs_rest": one_vs_rest,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(golden, f)
        f.write("\n")
    for c in classification:
        print(c["name"], round(c["balanced_accuracy"], 4), round(c["macro_f1"], 4))
    for c in ranking:
        print(c["name"], round(c["map_micro"], 4), round(c["map_macro"], 4), c["auroc_macro"])
    for c in regression:
        print(c["name"], round(c["r2"], 4), round(c["mae"], 4))
    print(golden["reference"])


if __name__ == "__main__":
    main()
