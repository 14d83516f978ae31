#!/usr/bin/env python3
"""Write tessera-eeg's standard 10-05 electrode table (domains/eeg/src/positions_1005.csv).

Source: MNE-Python's built-in 10-05 template montage,
mne.channels.make_standard_montage('standard_1005'). Since MNE 1.13 that name is a
deprecated alias of 'colin27_1005' (FieldTrip's standard_1005.elc, electrodes fit on the
Colin27 MRI, in fsaverage/MNI "mri" coordinates, unscaled, fiducials replaced by
fsaverage's); the alias is removed in MNE 1.14, so the new name is used when it exists.

The positions are written in MNE's *head* frame (x towards the right preauricular point,
y towards the nasion, z up; origin midway between LPA and RPA), i.e. exactly what
`raw.set_montage('standard_1005')` stores in info['chs'][i]['loc'][:3]: the montage is
passed through mne.channels.montage.transform_to_head (compute_native_head_t from its
fiducials). Metres -> millimetres, rounded to 0.01 mm. Row order = montage channel order.

    ~/.cache/tessera/venv/bin/pip install mne scipy
    ~/.cache/tessera/venv/bin/python scripts/eeg_positions.py

Also writes domains/eeg/src/positions_1005.md with the provenance.
"""

import collections
import os

import mne
import numpy as np
from mne.channels.montage import transform_to_head

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT_DIR = os.path.join(ROOT, "domains", "eeg", "src")


def mm(v):
    return np.round(np.asarray(v, dtype=np.float64) * 1000.0, 2) + 0.0  # +0.0: no "-0.00"


def fmt(v):
    a = mm(v)
    return "(%.2f, %.2f, %.2f)" % (a[0], a[1], a[2])


def main():
    kind = "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages() else "standard_1005"
    native = mne.channels.make_standard_montage(kind)
    npos = native.get_positions()
    head = transform_to_head(native)
    pos = head.get_positions()
    assert pos["coord_frame"] == "head", pos["coord_frame"]
    ch_pos = pos["ch_pos"]
    names = list(ch_pos)

    os.makedirs(OUT_DIR, exist_ok=True)
    csv_path = os.path.join(OUT_DIR, "positions_1005.csv")
    with open(csv_path, "w", newline="\n") as f:
        f.write("name,x_mm,y_mm,z_mm\n")
        for name in names:
            a = mm(ch_pos[name])
            f.write("%s,%.2f,%.2f,%.2f\n" % (name, a[0], a[1], a[2]))

    lower = collections.defaultdict(list)
    for n in names:
        lower[n.lower()].append(n)
    collisions = {k: v for k, v in lower.items() if len(v) > 1}

    trans = mne.channels.compute_native_head_t(native)["trans"]
    examples = ["Cz", "Fz", "Fp1", "T7", "O1"]
    md_path = os.path.join(OUT_DIR, "positions_1005.md")
    with open(md_path, "w", newline="\n") as f:
        f.write("# positions_1005.csv: provenance\n\n")
        f.write("- Generator: `scripts/eeg_positions.py`\n")
        f.write(
            "- Source: MNE-Python %s, `mne.channels.make_standard_montage(\"%s\")` "
            "(`\"standard_1005\"` is a deprecated alias of `\"colin27_1005\"` since MNE 1.13, "
            "removed in 1.14). Data: FieldTrip `template/electrode/standard_1005.elc` "
            "(10-05 positions fit on the Colin27 MRI), native frame `%s` (fsaverage/MNI), "
            "not rescaled.\n" % (mne.__version__, kind, npos["coord_frame"])
        )
        f.write(
            "- Frame of the CSV: MNE **head** frame: +x towards RPA, +y towards the nasion, "
            "+z up, origin midway between LPA and RPA. Obtained with "
            "`mne.channels.montage.transform_to_head(montage)`; identical to what "
            "`raw.set_montage(\"standard_1005\")` stores in `info[\"chs\"][i][\"loc\"][:3]`. "
            "The fiducials used are fsaverage's (MNE replaces the .elc ones for `mri` montages).\n"
        )
        f.write("- Units: millimetres (MNE's metres x 1000), rounded to 0.01 mm.\n")
        f.write("- Rows: %d electrodes, in the montage's channel order; names unique "
                "case-insensitively: %s.\n"
                % (len(names), "yes" if not collisions else "no, %r" % collisions))
        f.write("- Fiducials, head frame: nasion %s, LPA %s, RPA %s mm.\n"
                % (fmt(pos["nasion"]), fmt(pos["lpa"]), fmt(pos["rpa"])))
        f.write("- Native (`%s`) -> head transform (4x4, metres):\n\n" % npos["coord_frame"])
        for row in trans:
            f.write("      " + "  ".join("%+.8f" % v for v in row) + "\n")
        f.write("\n- Examples (head frame | native %s frame), mm:\n" % npos["coord_frame"])
        for n in examples:
            f.write("  - %s: %s | %s\n" % (n, fmt(ch_pos[n]), fmt(npos["ch_pos"][n])))
        f.write(
            "\nNote: MNE <= 1.12 built `standard_1005` differently (same .elc file, but "
            "rescaled to a 95 mm median radius, frame `unknown`, the file's own fiducials), "
            "so positions from older MNE versions differ from this table.\n"
        )

    print("wrote %s (%d electrodes, MNE %s, %s) and %s" % (csv_path, len(names), mne.__version__, kind, md_path))
    print("case-insensitive collisions:", collisions or "none")
    for n in ("T3", "T4", "T5", "T6", "A1", "A2", "M1", "M2", "Cz", "Fp1", "T7", "O1", "Fz"):
        print(n, fmt(ch_pos[n]) if n in ch_pos else "absent")


if __name__ == "__main__":
    main()
