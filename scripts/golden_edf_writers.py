"""Small EDF/EDF+/BDF/BDF+ files from OTHER writers, and what pyEDFlib reads back from them,
for domains/eeg/tests/writers.rs.

Writers: pyEDFlib's EdfWriter (edflib), MNE's exporter (edfio, EDF and BDF) and, for EDF+D
(which neither can write), a few lines below that pack the bytes by hand following the
EDF+ specification (an independent writer; pyEDFlib reads it back). Every signal is
deterministic (sines plus a ramp). Run from the repository root with an interpreter that
has pyedflib, mne and edfio (benchmarks/.venv after `pip install edfio`):

    benchmarks/.venv/bin/python scripts/golden_edf_writers.py

It writes domains/eeg/tests/writers/*.edf|*.bdf and domains/eeg/tests/writers/golden.json.
For each file golden.json holds: the writer, the format as the header's version and
reserved fields say (`EDF`, `EDF+C`, `EDF+D`, `BDF`, `BDF+C`, `BDF+D`), pyEDFlib's file
type, record count and duration, the first record's time-keeping onset, per ordinary signal
label/unit/rate/samples/physical range and the physical values (all of them when short,
else the first 16, the last 4 and sums), and the annotations as pyEDFlib reports them
(onset s, duration s or -1 when absent, text). pyEDFlib (edflib) reports annotation onsets
relative to the first data record's start (it subtracts the subsecond start offset, the
time-keeping TAL of record 0); `first_record_onset_s` records that offset.
"""
import datetime as dt
import json
import math
import struct
import warnings
from pathlib import Path

import numpy as np
import pyedflib

OUT = Path(__file__).resolve().parent.parent / "domains" / "eeg" / "tests" / "writers"
FULL_VALUES_MAX = 64  # signals with at most this many samples are stored in full

warnings.filterwarnings("ignore")


def wave(n, rate, f1, a1, f2, a2, ramp):
    """Two sines plus a ramp: deterministic, spans the physical range."""
    t = np.arange(n) / rate
    return a1 * np.sin(2 * np.pi * f1 * t) + a2 * np.sin(2 * np.pi * f2 * t + 0.3) + ramp * (
        np.arange(n) / max(n - 1, 1) - 0.5
    )


def raw_header(path):
    b = Path(path).read_bytes()[:256]
    version = "BDF" if b[0] == 0xFF and b[1:8] == b"BIOSEMI" else "EDF"
    reserved = b[192:236].decode("latin-1").strip()
    fmt = version
    for tag in ("+C", "+D"):
        if reserved.startswith(version + tag) or reserved.startswith("EDF" + tag) or reserved.startswith("BDF" + tag):
            fmt = version + tag
    return fmt, reserved


def first_tal_onset(path):
    """The time-keeping onset of record 0 (first TAL of the first annotation signal)."""
    b = Path(path).read_bytes()
    nall = int(b[252:256])
    width = 3 if b[0] == 0xFF else 2
    labels = [b[256 + 16 * i: 256 + 16 * (i + 1)].decode("latin-1").strip() for i in range(nall)]
    spr = [int(b[256 + 216 * nall + 8 * i: 256 + 216 * nall + 8 * (i + 1)]) for i in range(nall)]
    if not any(l in ("EDF Annotations", "BDF Annotations") for l in labels):
        return None
    off = 256 * (nall + 1)
    for lab, n in zip(labels, spr):
        if lab in ("EDF Annotations", "BDF Annotations"):
            tal = b[off: off + n * width].split(b"\x14")[0]
            return float(tal.decode())
        off += n * width
    return None


def values(s, x):
    n = len(x)
    w = (np.arange(n) % 7 + 1).astype(float)
    s.update({
        "n": int(n),
        "first": [float(v) for v in x[:16]],
        "last": [float(v) for v in x[-4:]],
        "sum": float(x.sum()),
        "sum_abs": float(np.abs(x).sum()),
        "weighted_sum": float((w * x).sum()),
    })
    if n <= FULL_VALUES_MAX:
        s["values"] = [float(v) for v in x]
    return s


def describe_edfio(path, writer):
    """For EDF+D, which pyEDFlib refuses to open: what edfio reads back."""
    import edfio

    path = Path(path)
    fmt, reserved = raw_header(path)
    e = edfio.read_edf(path)
    sigs = []
    for sig in e.signals:
        lo, hi = sig.physical_range
        dlo, dhi = sig.digital_range
        sigs.append(values({
            "label": sig.label,
            "unit": sig.physical_dimension,
            "rate_hz": float(sig.sampling_frequency),
            "samples_per_record": int(round(sig.sampling_frequency * e.data_record_duration)),
            "physical_min": float(lo),
            "physical_max": float(hi),
            "digital_min": int(dlo),
            "digital_max": int(dhi),
        }, np.asarray(sig.data, dtype=float)))
    return {
        "writer": writer,
        "reader": f"edfio {edfio.__version__} (pyEDFlib refuses EDF+D: 'The file is discontinuous and cannot be read')",
        "format": fmt,
        "reserved": reserved,
        "records": int(e.num_data_records),
        "record_duration_s": float(e.data_record_duration),
        "first_record_onset_s": first_tal_onset(path),
        "bytes": path.stat().st_size,
        "signals": sigs,
        "annotations": [[float(a.onset), -1.0 if a.duration is None else float(a.duration), a.text] for a in e.annotations],
    }


def describe(path, writer):
    path = Path(path)
    fmt, reserved = raw_header(path)
    f = pyedflib.EdfReader(str(path))
    sigs = []
    for i in range(f.signals_in_file):
        sigs.append(values({
            "label": f.getLabel(i),
            "unit": f.getPhysicalDimension(i),
            "rate_hz": float(f.getSampleFrequency(i)),
            "samples_per_record": int(f.samples_in_datarecord(i)),
            "physical_min": float(f.getPhysicalMinimum(i)),
            "physical_max": float(f.getPhysicalMaximum(i)),
            "digital_min": int(f.getDigitalMinimum(i)),
            "digital_max": int(f.getDigitalMaximum(i)),
        }, f.readSignal(i)))
    onsets, durations, texts = f.readAnnotations()
    d = {
        "writer": writer,
        "reader": f"pyedflib {pyedflib.__version__}",
        "format": fmt,
        "reserved": reserved,
        "pyedflib_filetype": int(f.filetype),
        "records": int(f.datarecords_in_file),
        "record_duration_s": float(f.datarecord_duration),
        "first_record_onset_s": first_tal_onset(path),
        "bytes": path.stat().st_size,
        "signals": sigs,
        "annotations": [[float(o), float(du), str(t)] for o, du, t in zip(onsets, durations, texts)],
    }
    f.close()
    return d


PYEDFLIB = f"pyedflib {pyedflib.__version__} (edflib)"
START = dt.datetime(2024, 3, 5, 10, 20, 30)


def pyedflib_file(name, file_type, chans, data, annotations=(), record_duration=None, n_annot=None):
    path = OUT / name
    f = pyedflib.EdfWriter(str(path), len(chans), file_type=file_type)
    f.setSignalHeaders(chans)
    f.setStartdatetime(START)
    if record_duration is not None:
        f.setDatarecordDuration(record_duration)
    if n_annot is not None:
        f.set_number_of_annotation_signals(n_annot)
    f.writeSamples(data)
    for onset, duration, text in annotations:
        f.writeAnnotation(onset, duration, text)
    f.close()
    return path


def chan(label, unit, rate, pmin, pmax, dmin=-32768, dmax=32767, prefilter=""):
    return {
        "label": label,
        "dimension": unit,
        "sample_frequency": rate,
        "physical_min": pmin,
        "physical_max": pmax,
        "digital_min": dmin,
        "digital_max": dmax,
        "transducer": "",
        "prefilter": prefilter,
    }


def main():
    import edfio
    import mne

    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*"):
        if old.suffix in (".edf", ".bdf", ".json"):
            old.unlink()
    files = {}

    # 1. EDF+C, 3 signals at 256/128/64 Hz, uV/mV/V, two annotation signals (edflib puts at
    #    most one annotation per annotation signal per record), UTF-8 text, with and without
    #    duration, a zero duration.
    secs = 3
    chans = [
        chan("EEG Fp1", "uV", 256, -250.0, 250.0),
        chan("ECG", "mV", 128, -2.5, 2.5, -2048, 2047),
        chan("Resp", "V", 64, -0.004, 0.004, -1000, 1000),
    ]
    data = [
        wave(256 * secs, 256, 10, 100, 3, 40, 150),
        wave(128 * secs, 128, 1.2, 1.5, 7, 0.4, 0.8),
        wave(64 * secs, 64, 0.3, 0.002, 2, 0.0005, 0.003),
    ]
    ann = [(0.0, -1, "Start"), (0.5, 1.25, "Réveil µ"), (1.75, 0, "zero length"), (2.5, 0.5, "Apnée")]
    p = pyedflib_file("pyedflib_edfplus_3rates.edf", pyedflib.FILETYPE_EDFPLUS, chans, data, ann, n_annot=2)
    files[p.name] = describe(p, PYEDFLIB)

    # 2. BDF+C, 24-bit, 2 signals, annotations.
    secs = 2
    chans = [
        chan("EEG Cz", "uV", 256, -400.0, 400.0, -8388608, 8388607),
        chan("EEG Oz", "uV", 128, -1000.0, 1000.0, -8388608, 8388607),
    ]
    data = [wave(256 * secs, 256, 11, 150, 2, 60, 100), wave(128 * secs, 128, 4, 300, 9, 100, -500)]
    ann = [(0.25, -1, "stim on"), (1.0, 0.75, "Schlaf µV")]
    p = pyedflib_file("pyedflib_bdfplus.bdf", pyedflib.FILETYPE_BDFPLUS, chans, data, ann)
    files[p.name] = describe(p, PYEDFLIB)

    # 3. Plain EDF and plain BDF (no annotation signal).
    secs = 2
    chans = [chan("C3", "uV", 100, -300.0, 300.0), chan("C4", "uV", 50, -300.0, 300.0, -2000, 2000)]
    data = [wave(100 * secs, 100, 6, 120, 1, 50, 200), wave(50 * secs, 50, 2, 100, 5, 30, -150)]
    p = pyedflib_file("pyedflib_edf.edf", pyedflib.FILETYPE_EDF, chans, data)
    files[p.name] = describe(p, PYEDFLIB)
    chans = [chan("Pz", "uV", 128, -500.0, 500.0, -8388608, 8388607)]
    data = [wave(128 * secs, 128, 8, 200, 1.5, 100, 300)]
    p = pyedflib_file("pyedflib_bdf.bdf", pyedflib.FILETYPE_BDF, chans, data)
    files[p.name] = describe(p, PYEDFLIB)

    # 4. Subsecond record duration 0.3 s (not a whole number of seconds): 100 Hz (30 samples
    #    per record) and 33.333… Hz (10 per record, a non-integer rate); annotations between
    #    record boundaries (edflib stores one annotation per annotation signal and record:
    #    4 annotations fit in the 5 records of one annotation signal).
    rec = 0.3
    nrec = 5
    chans = [chan("EEG F3", "uV", 100, -200.0, 200.0), chan("SpO2", "%", 100 / 3, 80.0, 100.0, 0, 1000)]
    data = [wave(30 * nrec, 100, 5, 80, 13, 20, 60), 90 + wave(10 * nrec, 100 / 3, 0.5, 5, 2, 2, 4)]
    ann = [(0.05, -1, "a"), (0.35, 0.1, "b"), (0.7, -1, "c"), (1.25, 0.0125, "d")]
    p = pyedflib_file("pyedflib_edfplus_rec0.3s.edf", pyedflib.FILETYPE_EDFPLUS, chans, data, ann, record_duration=rec)
    files[p.name] = describe(p, PYEDFLIB)

    # 5. A non-integer sample rate chosen by pyEDFlib itself: 2.5 Hz makes it pick 2 s
    #    records (5 samples per record), next to 10 Hz (20 per record).
    chans = [chan("Temp", "degC", 2.5, 30.0, 40.0, -1000, 1000), chan("Light", "lux", 10, 0.0, 500.0)]
    data = [35 + wave(5 * 3, 2.5, 0.1, 2, 0.3, 1, 2), 250 + wave(20 * 3, 10, 1, 100, 3, 50, 100)]
    p = pyedflib_file("pyedflib_edfplus_2.5hz.edf", pyedflib.FILETYPE_EDFPLUS, chans, data, [(1.0, 2.0, "lights")])
    files[p.name] = describe(p, PYEDFLIB)

    # 6. MNE exports (edfio): EDF and BDF of a RawArray with 10-20 names and annotations,
    #    one export with a subsecond start time, one with a non-integer sampling rate (which
    #    MNE writes with a non-integer record duration).
    mne_writer = f"mne {mne.__version__} export_raw (edfio {edfio.__version__})"
    names = ["Fp1", "Fz", "Cz", "O2"]

    def raw_array(sfreq, n, meas_date):
        x = np.stack([wave(n, sfreq, 10 + i, 20e-6, 1 + i, 8e-6, (i - 1.5) * 10e-6) for i in range(len(names))])
        info = mne.create_info(names, sfreq, "eeg")
        raw = mne.io.RawArray(x, info, verbose="error")
        raw.set_meas_date(meas_date)
        raw.set_annotations(mne.Annotations([0.5, 1.2], [0.0, 0.4], ["blink", "eyes closed"]))
        return raw

    utc = dt.timezone.utc
    for name, fmt, sfreq, n, date in [
        ("mne_edf.edf", "edf", 100.0, 200, dt.datetime(2024, 3, 5, 10, 20, 30, tzinfo=utc)),
        ("mne_bdf.bdf", "bdf", 64.0, 128, dt.datetime(2024, 3, 5, 10, 20, 30, tzinfo=utc)),
        ("mne_edf_subsecond_start.edf", "edf", 50.0, 100, dt.datetime(2024, 3, 5, 10, 20, 30, 250000, tzinfo=utc)),
        ("mne_edf_sfreq_100.5.edf", "edf", 100.5, 200, dt.datetime(2024, 3, 5, 10, 20, 30, tzinfo=utc)),
    ]:
        raw = raw_array(sfreq, n, date)
        path = OUT / name
        mne.export.export_raw(str(path), raw, fmt=fmt, overwrite=True, verbose="error")
        files[name] = describe(path, mne_writer)

    # 7. EDF+D by hand (neither edflib nor edfio writes EDF+D): 3 records of 0.5 s at 1.0,
    #    2.5 and 3.0 s after the start (gaps), 2 signals, annotations with and without
    #    duration, one onset negative (before the start, allowed by EDF+).
    p = OUT / "handmade_edfplusD.edf"
    write_edfplus_d(p)
    files[p.name] = describe_edfio(p, "golden_edf_writers.py hand-packed bytes (EDF+ specification)")
    files[p.name]["record_onsets_s"] = [1.0, 2.5, 3.0]

    total = sum(v["bytes"] for v in files.values())
    golden = {
        "pyedflib": pyedflib.__version__,
        "mne": mne.__version__,
        "edfio": edfio.__version__,
        "numpy": np.__version__,
        "note": "annotation onsets as pyEDFlib reports them: relative to the first data record's start "
        "(edflib subtracts first_record_onset_s); duration -1 = none written",
        "files": files,
    }
    (OUT / "golden.json").write_text(json.dumps(golden, ensure_ascii=False, separators=(",", ":")) + "\n")
    size = (OUT / "golden.json").stat().st_size
    print(f"{len(files)} files, {total} bytes of fixtures, golden.json {size} bytes, {total + size} in all")
    assert total + size < 60_000, "keep the fixtures small"
    for k, v in files.items():
        print(f"  {k:32s} {v['bytes']:6d} B  {v['format']:6s} {v['records']} x {v['record_duration_s']} s  {v['writer']}")


def write_edfplus_d(path):
    def fld(s, n):
        b = s.encode("latin-1")
        assert len(b) <= n, s
        return b + b" " * (n - len(b))

    rec = 0.5
    onsets = [1.0, 2.5, 3.0]
    sigs = [
        # label, unit, pmin, pmax, dmin, dmax, spr
        ("EEG T7", "uV", -100.0, 100.0, -32768, 32767, 25),
        ("EEG T8", "mV", -0.25, 0.25, -10000, 10000, 10),
    ]
    # TALs per record: time keeping first, then annotations that fall in the record.
    tals = [[f"+{o:g}\x14\x14\x00"] for o in onsets]
    tals[0].append("-0.5\x15" + "0.25\x14pre-start\x14\x00")
    tals[0].append("+1.2\x14spike\x14sharp wave\x14\x00")  # two texts in one TAL
    tals[1].append("+2.75\x150.5\x14Arousal ß\x14\x00")
    tals[2].append("+3.1\x15" + "0\x14marker\x14\x00")
    tal_bytes = ["".join(t).encode("utf-8") for t in tals]
    ann_spr = max(math.ceil(len(t) / 2) for t in tal_bytes) + 2
    all_sigs = sigs + [("EDF Annotations", "", -1.0, 1.0, -32768, 32767, ann_spr)]
    ns = len(all_sigs)
    h = fld("0", 8) + fld("X X X X", 80) + fld("Startdate 05-MAR-2024 X X X", 80)
    h += fld("05.03.24", 8) + fld("10.20.30", 8) + fld(str(256 * (ns + 1)), 8) + fld("EDF+D", 44)
    h += fld(str(len(onsets)), 8) + fld(f"{rec:g}", 8) + fld(str(ns), 4)
    cols = [
        (16, lambda s: s[0]), (80, lambda s: ""), (8, lambda s: s[1]), (8, lambda s: f"{s[2]:g}"),
        (8, lambda s: f"{s[3]:g}"), (8, lambda s: str(s[4])), (8, lambda s: str(s[5])),
        (80, lambda s: ""), (8, lambda s: str(s[6])), (32, lambda s: ""),
    ]
    for n, get in cols:
        for s in all_sigs:
            h += fld(get(s), n)
    assert len(h) == 256 * (ns + 1)
    body = b""
    for r, o in enumerate(onsets):
        for k, (label, unit, pmin, pmax, dmin, dmax, spr) in enumerate(sigs):
            rate = spr / rec
            t = o + np.arange(spr) / rate
            x = (0.6 * np.sin(2 * np.pi * (3 + 4 * k) * t) + 0.3 * (np.arange(spr) / spr - 0.5)) * pmax
            gain = (pmax - pmin) / (dmax - dmin)
            d = np.clip(np.round((x - pmin) / gain + dmin), dmin, dmax).astype("<i2")
            body += d.tobytes()
        body += tal_bytes[r] + b"\x00" * (2 * ann_spr - len(tal_bytes[r]))
    path.write_bytes(h + body)


if __name__ == "__main__":
    main()
