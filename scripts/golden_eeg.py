#!/usr/bin/env python3
"""Generate golden values for tessera-eeg's zero-phase filters and resampling
(domains/eeg/tests/golden_filters.json).

Reference: scipy.signal (butter/iirnotch/tf2sos design, sosfiltfilt, filtfilt,
sosfilt_zi, resample_poly) and numpy (median, percentile). Made with the tessera venv:

    ~/.cache/tessera/venv/bin/pip install mne scipy
    ~/.cache/tessera/venv/bin/python scripts/golden_eeg.py

Input: fs = 250 Hz, N = 1000, t = n/fs,
    x = sin(2*pi*3*t) + 0.5*sin(2*pi*50*t) + 0.3*sin(2*pi*0.1*t) + 0.2*cos(2*pi*70*t) + 0.01*n
x itself is stored, so Rust tests need not recompute it. Every float is written with
Python's repr (shortest decimal that round-trips the float64).

The script also runs a loop-level pure-Python reimplementation of the scipy algorithms
(the form a Rust port would take) and stores, per case, the max |difference| to scipy's
output under "reimpl_max_abs_diff" (0.0 = bit-exact), so the Rust tests know which
tolerance is achievable.
"""

import json
import math
import os

import numpy as np
import scipy
import scipy.signal as ss
import scipy.special as sp

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "domains", "eeg", "tests", "golden_filters.json")

FS = 250.0
N = 1000


def make_x(n_samples, fs=FS):
    n = np.arange(n_samples, dtype=np.float64)
    t = n / fs
    return (np.sin(2 * np.pi * 3 * t) + 0.5 * np.sin(2 * np.pi * 50 * t)
            + 0.3 * np.sin(2 * np.pi * 0.1 * t) + 0.2 * np.cos(2 * np.pi * 70 * t)
            + 0.01 * n)


def lst(a):
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def mat(a):
    return [lst(row) for row in np.asarray(a, dtype=np.float64)]


# ---------------------------------------------------------------------------
# Loop-level reimplementation (what the Rust port should do), float64 scalars.
# ---------------------------------------------------------------------------

def ref_padlen_sos(sos):
    n_sections = len(sos)
    ntaps = 2 * n_sections + 1
    ntaps -= min(sum(1 for r in sos if r[2] == 0), sum(1 for r in sos if r[5] == 0))
    return 3 * ntaps


def ref_odd_ext(x, n):
    x = list(x)
    if n < 1:
        return x
    left = [2 * x[0] - x[i] for i in range(n, 0, -1)]            # x[n], ..., x[1]
    L = len(x)
    right = [2 * x[-1] - x[L - 2 - i] for i in range(n)]          # x[L-2], ..., x[L-1-n]
    return left + x + right


def ref_solve2(m, rhs):
    """2x2 numpy.linalg.solve (LAPACK dgesv via OpenBLAS), reproduced bit-exactly:
    partial pivoting (swap rows when |a10| > |a00|), multiplier l = a10 * (1/a00)
    (dgetrf scales the column by the reciprocal pivot), then true divisions in the
    triangular solve. Checked against scipy.signal.lfilter_zi on 1482 butter/cheby1/ellip
    sections: all bit-identical (l = a10/a00 matched only 1226)."""
    (a00, a01), (a10, a11) = m
    b0, b1 = rhs
    if abs(a10) > abs(a00):
        a00, a01, a10, a11 = a10, a11, a00, a01
        b0, b1 = b1, b0
    l10 = a10 * (1.0 / a00)
    u11 = a11 - l10 * a01
    y1 = b1 - l10 * b0
    x1 = y1 / u11
    x0 = (b0 - x1 * a01) / a00
    return [x0, x1]


def ref_lfilter_zi_biquad(b, a, solve=ref_solve2):
    # a[0] == 1 for every row of a scipy sos; scipy would divide b and a by a[0] otherwise.
    # IminusA = eye(2) - companion(a).T = [[1 + a1, -1], [a2, 1]]
    # B = b[1:] - a[1:] * b[0]
    m = ((1.0 + a[1], -1.0), (a[2], 1.0))
    rhs = (b[1] - a[1] * b[0], b[2] - a[2] * b[0])
    return solve(m, rhs)


def ref_sosfilt_zi(sos, solve=ref_solve2):
    zi = []
    scale = 1.0
    for r in sos:
        b, a = r[:3], r[3:]
        z = ref_lfilter_zi_biquad(b, a, solve)
        zi.append([scale * z[0], scale * z[1]])
        scale *= ((b[0] + b[1]) + b[2]) / ((a[0] + a[1]) + a[2])
    return zi


def ref_sosfilt(sos, x, zi):
    zi = [list(z) for z in zi]
    y = []
    for xc in x:
        for s, r in enumerate(sos):
            xn = r[0] * xc + zi[s][0]
            zi[s][0] = r[1] * xc - r[4] * xn + zi[s][1]
            zi[s][1] = r[2] * xc - r[5] * xn
            xc = xn
        y.append(xc)
    return y


def ref_sosfiltfilt(sos, x, solve=ref_solve2):
    sos = [[float(v) for v in r] for r in np.asarray(sos)]
    edge = ref_padlen_sos(sos)
    if len(x) <= edge:
        raise ValueError("len(x) <= padlen")
    ext = ref_odd_ext(x, edge)
    zi = ref_sosfilt_zi(sos, solve)
    y = ref_sosfilt(sos, ext, [[z * ext[0] for z in zz] for zz in zi])
    y = ref_sosfilt(sos, y[::-1], [[z * y[-1] for z in zz] for zz in zi])
    y = y[::-1]
    return y[edge:len(y) - edge] if edge > 0 else y


def ref_lfilter(b, a, x, zi):
    # direct form II transposed, coefficients normalised by a[0] first
    a0 = a[0]
    b = [v / a0 for v in b]
    a = [v / a0 for v in a]
    z = list(zi)
    K = len(b)
    y = []
    for xv in x:
        yv = z[0] + b[0] * xv
        for k in range(K - 2):
            z[k] = z[k + 1] + xv * b[k + 1] - yv * a[k + 1]
        z[K - 2] = xv * b[K - 1] - yv * a[K - 1]
        y.append(yv)
    return y


def ref_filtfilt(b, a, x, zi):
    edge = 3 * max(len(a), len(b))
    ext = ref_odd_ext(x, edge)
    y = ref_lfilter(b, a, ext, [z * ext[0] for z in zi])
    y = ref_lfilter(b, a, y[::-1], [z * y[-1] for z in zi])
    y = y[::-1]
    return y[edge:len(y) - edge]


def ref_np_sum(a):
    """numpy's float64 add.reduce on a contiguous 1-D array (pairwise_sum)."""
    a = list(a)
    n = len(a)
    if n < 8:
        res = 0.0
        for v in a:
            res += v
        return res
    if n <= 128:
        r = a[:8]
        i = 8
        while i < n - n % 8:
            for j in range(8):
                r[j] += a[i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res += a[i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return ref_np_sum(a[:n2]) + ref_np_sum(a[n2:])


def ref_firwin_lowpass_kaiser(numtaps, f_c, beta):
    """firwin(numtaps, f_c, window=('kaiser', beta)), f_c relative to Nyquist (fs=2)."""
    alpha = 0.5 * (numtaps - 1)
    m = [k - alpha for k in range(numtaps)]
    h = []
    for mk in m:
        y = math.pi * (f_c * mk)
        if y == 0.0:
            y = np.finfo(np.float64).eps
        h.append(0.0 + f_c * (np.sin(y) / y))   # np.sin: match numpy's sin exactly
    # kaiser window, sym=True
    wa = (numtaps - 1) / 2.0
    i0b = sp.i0(beta)
    win = [sp.i0(beta * np.sqrt(1 - ((k - wa) / wa) ** 2.0)) / i0b for k in range(numtaps)]
    h = [hv * wv for hv, wv in zip(h, win)]
    s = ref_np_sum([hv * 1.0 for hv in h])   # c = cos(pi*m*0.0) = 1.0
    return [float(hv / s) for hv in h]


def ref_output_len(len_h, in_len, up, down):
    in_len_copy = in_len + (len_h + (-len_h % up)) // up - 1
    nt = in_len_copy * up
    need = nt // down
    if nt % down > 0:
        need += 1
    return need


def ref_upfirdn(h, x, up, down):
    """upfirdn, mode='constant', cval=0 (polyphase loop of _upfirdn_apply.pyx)."""
    len_h0 = len(h)
    hp = len(h) + (-len(h) % up)
    hf = list(h) + [0.0] * (hp - len(h))
    # h_trans_flip = h_full.reshape(-1, up).T[:, ::-1].ravel()
    rows = hp // up
    htf = []
    for phase in range(up):
        col = [hf[r * up + phase] for r in range(rows)]
        htf.extend(col[::-1])
    h_per_phase = hp // up
    len_x = len(x)
    padded_len = len_x + h_per_phase - 1
    out = [0.0] * ref_output_len(len_h0, len_x, up, down)
    x_idx = y_idx = t = 0
    while x_idx < len_x:
        h_idx = t * h_per_phase
        x_conv_idx = x_idx - h_per_phase + 1
        if x_conv_idx < 0:
            h_idx -= x_conv_idx
            x_conv_idx = 0
        for xi in range(x_conv_idx, x_idx + 1):
            out[y_idx] = out[y_idx] + x[xi] * htf[h_idx]
            h_idx += 1
        y_idx += 1
        t += down
        x_idx += t // up
        t = t % up
    while x_idx < padded_len:
        h_idx = t * h_per_phase
        x_conv_idx = x_idx - h_per_phase + 1
        for xi in range(x_conv_idx, x_idx + 1):
            xv = x[xi] if 0 <= xi < len_x else 0.0
            out[y_idx] = out[y_idx] + xv * htf[h_idx]
            h_idx += 1
        y_idx += 1
        t += down
        x_idx += t // up
        t = t % up
    return out


def ref_resample_poly(x, up, down):
    g = math.gcd(up, down)
    up //= g
    down //= g
    n_in = len(x)
    n_out = n_in * up
    n_out = n_out // down + (1 if n_out % down else 0)
    max_rate = max(up, down)
    f_c = 1.0 / max_rate
    half_len = 10 * max_rate
    h = ref_firwin_lowpass_kaiser(2 * half_len + 1, f_c, 5.0)
    h = [hv * up for hv in h]
    n_pre_pad = down - half_len % down
    n_post_pad = 0
    n_pre_remove = (half_len + n_pre_pad) // down
    while ref_output_len(len(h) + n_pre_pad + n_post_pad, n_in, up, down) < n_out + n_pre_remove:
        n_post_pad += 1
    h = [0.0] * n_pre_pad + h + [0.0] * n_post_pad
    y = ref_upfirdn(h, list(x), up, down)
    return y[n_pre_remove:n_pre_remove + n_out], h


def maxdiff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return "shape mismatch %s vs %s" % (a.shape, b.shape)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


# ---------------------------------------------------------------------------

def sos_case(name, order, wn, btype, x, fs=FS):
    sos = ss.butter(order, wn, btype=btype, fs=fs, output="sos")
    n_sections = sos.shape[0]
    ntaps = 2 * n_sections + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    case = {
        "design": "scipy.signal.butter(%d, %r, btype=%r, fs=%r, output='sos')" % (order, wn, btype, fs),
        "apply": "scipy.signal.sosfiltfilt(sos, x)  # padtype='odd', padlen=None",
        "order": order, "wn_hz": wn, "btype": btype, "fs": fs,
        "n": len(x),
        "sos": mat(sos),
        "sosfilt_zi": mat(ss.sosfilt_zi(sos)),
        "ntaps": ntaps,
        "padlen": 3 * ntaps,
    }
    try:
        y = ss.sosfiltfilt(sos, x)
        case["accepted"] = True
        case["y"] = lst(y)
        ref = ref_sosfiltfilt(sos, list(x))
        case["reimpl_max_abs_diff"] = maxdiff(ref, y)
        case["zi_reimpl_max_abs_diff"] = maxdiff(ref_sosfilt_zi(sos.tolist()), ss.sosfilt_zi(sos))
    except ValueError as e:
        case["accepted"] = False
        case["error"] = str(e)
    return case


def main():
    x = make_x(N)
    cases = {}
    cases["a_bandpass_0.5_45"] = sos_case("a", 4, [0.5, 45.0], "bandpass", x)
    cases["b_highpass_1"] = sos_case("b", 4, 1.0, "highpass", x)
    cases["c_lowpass_30"] = sos_case("c", 4, 30.0, "lowpass", x)

    # d) notch
    b, a = ss.iirnotch(50.0, 30.0, fs=FS)
    y_ff = ss.filtfilt(b, a, x)
    sos_n = ss.tf2sos(b, a)
    y_sff = ss.sosfiltfilt(sos_n, x)
    zi_tf = ss.lfilter_zi(b, a)
    n_sec = sos_n.shape[0]
    ntaps_n = 2 * n_sec + 1 - min(int((sos_n[:, 2] == 0).sum()), int((sos_n[:, 5] == 0).sum()))
    cases["d_notch_50_q30"] = {
        "design": "b, a = scipy.signal.iirnotch(50, 30, fs=250)",
        "w0_hz": 50.0, "q": 30.0, "fs": FS, "n": N,
        "b": lst(b), "a": lst(a),
        "lfilter_zi": lst(zi_tf),
        "filtfilt_padlen": 3 * max(len(a), len(b)),
        "y_filtfilt": lst(y_ff),
        "sos": mat(sos_n),
        "sosfilt_zi": mat(ss.sosfilt_zi(sos_n)),
        "sos_padlen": 3 * ntaps_n,
        "y_sosfiltfilt": lst(y_sff),
        "filtfilt_vs_sosfiltfilt_max_abs_diff": maxdiff(y_ff, y_sff),
        "reimpl_max_abs_diff_filtfilt": maxdiff(
            ref_filtfilt(lst(b), lst(a), list(x), lst(zi_tf)), y_ff),
        "reimpl_max_abs_diff_sosfiltfilt": maxdiff(ref_sosfiltfilt(sos_n, list(x)), y_sff),
    }

    # e) short signal with the band-pass of (a)
    x40 = make_x(40)
    e = sos_case("e", 4, [0.5, 45.0], "bandpass", x40)
    e["x"] = lst(x40)
    e["note"] = "x = the same formula with N = 40 (= first 40 samples of the main x)"
    cases["e_short_bandpass_n40"] = e

    # f) resample_poly
    res = {}
    for label, fs_in, fs_out in (("500_to_200", 500, 200), ("160_to_200", 160, 200)):
        g = math.gcd(fs_out, fs_in)
        up, down = fs_out // g, fs_in // g
        y = ss.resample_poly(x, up, down)
        ry, h = ref_resample_poly(list(x), up, down)
        max_rate = max(up, down)
        half_len = 10 * max_rate
        res[label] = {
            "call": "scipy.signal.resample_poly(x, %d, %d)  # window=('kaiser', 5.0), padtype='constant'" % (up, down),
            "nominal_fs_in": fs_in, "nominal_fs_out": fs_out, "up": up, "down": down,
            "n_in": N, "n_out": len(y),
            "numtaps": 2 * half_len + 1, "cutoff_rel_nyquist": 1.0 / max_rate, "half_len": half_len,
            "n_pre_pad": down - half_len % down,
            "n_pre_remove": (half_len + down - half_len % down) // down,
            "h_padded_scaled": h,
            "firwin_taps": lst(ss.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0))),
            "y": lst(y),
            "reimpl_max_abs_diff": maxdiff(ry, y),
        }
    cases["f_resample_poly"] = res

    p25, p75 = np.percentile(x, [25, 75])
    stats = {
        "median": float(np.median(x)),
        "p25": float(p25), "p75": float(p75),
        "iqr": float(p75 - p25),
        "note": "numpy.median; numpy.percentile(x, [25, 75]) method='linear'; iqr = p75 - p25",
    }

    doc = {
        "generator": "scripts/golden_eeg.py",
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__},
        "signal": {
            "formula": "sin(2*pi*3*t) + 0.5*sin(2*pi*50*t) + 0.3*sin(2*pi*0.1*t) + 0.2*cos(2*pi*70*t) + 0.01*n, t = n/fs",
            "fs": FS, "n": N,
        },
        "x": lst(x),
        "robust_stats": stats,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")

    # summary
    print("wrote", OUT, os.path.getsize(OUT), "bytes")
    for k, c in cases.items():
        if k == "f_resample_poly":
            for kk, cc in c.items():
                print(k, kk, "n_out", cc["n_out"], "reimpl diff", cc["reimpl_max_abs_diff"])
            continue
        print(k, {kk: v for kk, v in c.items() if kk in ("padlen", "ntaps", "accepted", "error",
              "reimpl_max_abs_diff", "zi_reimpl_max_abs_diff",
              "filtfilt_padlen", "sos_padlen", "filtfilt_vs_sosfiltfilt_max_abs_diff",
              "reimpl_max_abs_diff_filtfilt", "reimpl_max_abs_diff_sosfiltfilt")})
    print("stats", stats)


if __name__ == "__main__":
    main()
