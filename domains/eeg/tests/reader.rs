//! EDF/BDF reader and writer, filters against scipy, real files against pyEDFlib, bad
//! input, and the front end's windows.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use tessera_eeg::edf::{self, Annotation, Edf, Plus, Width, WriteSignal, WriteSpec};
use tessera_eeg::epochs::{epochs, EpochSpec};
use tessera_eeg::{EegConfig, EegError, EegFrontend};
use tessera_signal::{Band, Sos};
use tessera_tokens::resources::shared_data;
use tessera_tokens::Modality;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-eeg-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn json(name: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn zero_phase_filters_match_scipy() {
    let g = json("golden_filters.json");
    let x = floats(&g["x"]);
    let fs = g["signal"]["fs"].as_f64().unwrap();
    let cases = &g["cases"];
    let check = |name: &str, sos: Sos, x: &[f64], y: &serde_json::Value| {
        let want = floats(y);
        let got = sos.filtfilt(x);
        let err = max_abs_diff(&got, &want);
        let scale = want.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(
            err <= 1e-9 * scale.max(1.0),
            "{name}: max abs error {err:e}"
        );
        eprintln!("{name}: max abs error {err:.1e}");
    };
    let bp = Sos::butter(4, Band::Bandpass(0.5, 45.0), fs).unwrap();
    assert_eq!(bp.padlen(), 27);
    check("bandpass", bp.clone(), &x, &cases["a_bandpass_0.5_45"]["y"]);
    check(
        "highpass",
        Sos::butter(4, Band::Highpass(1.0), fs).unwrap(),
        &x,
        &cases["b_highpass_1"]["y"],
    );
    check(
        "lowpass",
        Sos::butter(4, Band::Lowpass(30.0), fs).unwrap(),
        &x,
        &cases["c_lowpass_30"]["y"],
    );
    let notch = Sos::notch(50.0, 30.0, fs).unwrap();
    let sos = &cases["d_notch_50_q30"]["sos"][0];
    for (i, v) in notch.0[0].iter().enumerate() {
        assert!(
            (v - sos[i].as_f64().unwrap()).abs() < 1e-14,
            "notch coefficient {i}"
        );
    }
    check(
        "notch (filtfilt)",
        notch.clone(),
        &x,
        &cases["d_notch_50_q30"]["y_filtfilt"],
    );
    let short = &cases["e_short_bandpass_n40"];
    check(
        "bandpass, 40 samples",
        bp,
        &floats(&short["x"]),
        &short["y"],
    );
}

fn signal(label: &str, spr: usize, data: Vec<f64>, width: Width) -> WriteSignal {
    let (dmin, dmax) = width.digital_limits();
    WriteSignal {
        label: label.into(),
        unit: "uV".into(),
        physical_min: -500.0,
        physical_max: 500.0,
        digital_min: dmin,
        digital_max: dmax,
        prefilter: String::new(),
        samples_per_record: spr,
        data,
    }
}

fn spec(width: Width, plus: Option<Plus>, signals: Vec<WriteSignal>) -> WriteSpec {
    WriteSpec {
        width,
        plus,
        record_duration_s: 1.0,
        signals,
        annotations: Vec::new(),
        record_onsets_s: None,
        patient: "X".into(),
        recording: "Y".into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Any widths, record durations, per-signal rates and annotations survive a write and
    /// a read, each signal within half its own quantisation step.
    #[test]
    fn written_files_read_back(
        bdf in any::<bool>(),
        plus in 0usize..3,
        records in 1usize..6,
        dur_idx in 0usize..4,
        rates in prop::collection::vec(1usize..40, 1..5),
        ranges in prop::collection::vec((4u32..20000).prop_map(|v| v as f64 / 4.0), 5),
        seed in any::<u64>(),
        texts in prop::collection::vec("[a-zA-Zµé0-9 ]{1,12}", 0..4),
    ) {
        let width = if bdf { Width::Bdf } else { Width::Edf };
        let plus = [None, Some(Plus::Continuous), Some(Plus::Discontinuous)][plus];
        let dur = [1.0, 0.5, 0.25, 2.0][dur_idx];
        let mut rng = tessera_tokens::Rng::new(seed);
        let signals: Vec<WriteSignal> = rates.iter().enumerate().map(|(i, &spr)| {
            let r = ranges[i % ranges.len()];
            let mut s = signal(&format!("S{i}"), spr, (0..spr * records).map(|_| (rng.uniform() * 2.0 - 1.0) * r).collect(), width);
            s.physical_min = -r;
            s.physical_max = r;
            s
        }).collect();
        let mut w = spec(width, plus, signals.clone());
        w.record_duration_s = dur;
        let onsets: Vec<f64> = (0..records).map(|r| r as f64 * dur + if r >= 2 { 3.5 } else { 0.0 }).collect();
        if plus == Some(Plus::Discontinuous) {
            w.record_onsets_s = Some(onsets.clone());
        }
        if plus.is_some() {
            w.annotations = texts.iter().enumerate().map(|(i, t)| Annotation {
                onset_s: i as f64 * 0.25, duration_s: if i % 2 == 0 { Some(0.5) } else { None }, text: t.trim().to_string(),
            }).filter(|a| !a.text.is_empty()).collect();
        }
        let d = tmp("prop");
        let f = d.join(if bdf { "x.bdf" } else { "x.edf" });
        edf::write(&f, &w).unwrap();
        let mut e = Edf::open(&f).unwrap();
        prop_assert_eq!(e.header.records, records);
        prop_assert_eq!(e.header.plus, plus);
        let which = e.header.data_signals();
        prop_assert_eq!(which.len(), signals.len());
        let got = e.read_physical(&which, 0, records).unwrap();
        for (s, g) in signals.iter().zip(&got) {
            let step = (s.physical_max - s.physical_min) / (s.digital_max - s.digital_min) as f64;
            prop_assert_eq!(g.len(), s.data.len());
            prop_assert!(max_abs_diff(g, &s.data) <= step * 0.5 + 1e-9);
        }
        let (ann, got_onsets) = e.annotations().unwrap();
        if plus == Some(Plus::Discontinuous) {
            prop_assert!(max_abs_diff(&got_onsets, &onsets) < 1e-6);
        } else {
            let regular: Vec<f64> = (0..records).map(|r| r as f64 * dur).collect();
            prop_assert!(max_abs_diff(&got_onsets, &regular) < 1e-6);
        }
        prop_assert_eq!(ann.len(), w.annotations.len());
        for (a, b) in ann.iter().zip(&w.annotations) {
            prop_assert_eq!(&a.text, &b.text);
            prop_assert!((a.onset_s - b.onset_s).abs() < 1e-6);
            prop_assert_eq!(a.duration_s, b.duration_s);
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// Writes a valid small EDF and returns its bytes and path.
fn small(d: &Path) -> (PathBuf, Vec<u8>) {
    let f = d.join("ok.edf");
    let sig = |l: &str| signal(l, 10, (0..30).map(|i| i as f64).collect(), Width::Edf);
    edf::write(&f, &spec(Width::Edf, None, vec![sig("Fp1"), sig("Cz")])).unwrap();
    let b = std::fs::read(&f).unwrap();
    (f, b)
}

/// Overwrites a fixed-width header field (`at` bytes into the file).
fn set(b: &mut [u8], at: usize, len: usize, v: &str) {
    let mut s = v.as_bytes().to_vec();
    s.resize(len, b' ');
    b[at..at + len].copy_from_slice(&s);
}

fn open_err(d: &Path, name: &str, bytes: &[u8]) -> String {
    let f = d.join(name);
    std::fs::write(&f, bytes).unwrap();
    let e = Edf::open(&f)
        .map(|_| ())
        .expect_err("bad header accepted")
        .to_string();
    assert!(e.contains(name), "error does not name the file: {e}");
    e
}

#[test]
fn bad_headers_are_errors_naming_the_file_and_field() {
    let d = tmp("bad");
    let (_, ok) = small(&d);
    // ns = 2 → signal fields start at 256; each block is ns × width.
    let mut b = ok.clone();
    set(&mut b, 236, 8, "4");
    let e = open_err(&d, "records.edf", &b);
    assert!(e.contains("declares 4 data records"), "{e}");
    let mut b = ok.clone();
    set(&mut b, 236, 8, "1");
    let e = open_err(&d, "fewer.edf", &b);
    assert!(e.contains("more bytes"), "{e}");
    let mut b = ok.clone();
    set(&mut b, 252, 4, "9");
    let e = open_err(&d, "signals.edf", &b);
    assert!(e.contains("number of signals 9"), "{e}");
    let mut b = ok.clone();
    set(&mut b, 256 + 2 * 120, 8, "32767"); // digital minimum of signal 1
    let e = open_err(&d, "digital.edf", &b);
    assert!(
        e.contains("digital minimum") && e.contains("signal 1"),
        "{e}"
    );
    let mut b = ok.clone();
    set(&mut b, 256 + 2 * 216 + 8, 8, "0"); // samples per record of signal 2
    let e = open_err(&d, "zero.edf", &b);
    assert!(
        e.contains("samples per record") && e.contains("signal 2"),
        "{e}"
    );
    let mut b = ok.clone();
    set(&mut b, 256 + 2 * 216, 8, "99999999"); // absurd size: no allocation, an error
    let e = open_err(&d, "huge.edf", &b);
    assert!(
        e.contains("samples per record") || e.contains("more than the file"),
        "{e}"
    );
    let mut b = ok.clone();
    set(&mut b, 236, 8, "-1");
    b.truncate(b.len() - 7);
    let e = open_err(&d, "truncated.edf", &b);
    assert!(e.contains("truncated"), "{e}");
    let mut b = ok.clone();
    b.truncate(b.len() - 7);
    let e = open_err(&d, "short.edf", &b);
    assert!(e.contains("truncated one"), "{e}");
    let mut b = ok.clone();
    set(&mut b, 244, 8, "abc");
    let e = open_err(&d, "duration.edf", &b);
    assert!(e.contains("duration of a data record `abc`"), "{e}");
    let e = open_err(&d, "text.edf", b"this is not an EDF file at all, just text; it is long enough to fill a few fields of a header but ...........................................................................................................................................................................");
    assert!(e.contains("not an EDF/BDF file"), "{e}");
    // `-1` records (a recording in progress) with whole records is fine.
    let mut b = ok.clone();
    set(&mut b, 236, 8, "-1");
    let f = d.join("minus1.edf");
    std::fs::write(&f, &b).unwrap();
    assert_eq!(Edf::open(&f).unwrap().header.records, 3);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn labels_and_units_in_latin1_and_utf8_are_read() {
    let d = tmp("latin1");
    let (_, mut b) = small(&d);
    // Unit of signal 1 as Latin-1 `µV` (0xB5 'V'), label of signal 2 as UTF-8 `Cz é`.
    b[256 + 2 * 96] = 0xB5;
    b[256 + 2 * 96 + 1] = b'V';
    for i in 0..8 {
        b[256 + 2 * 96 + i + 2] = b' ';
    }
    let label = "Cz é".as_bytes();
    b[256 + 16..256 + 16 + label.len()].copy_from_slice(label);
    let f = d.join("latin1.edf");
    std::fs::write(&f, &b).unwrap();
    let e = Edf::open(&f).unwrap();
    assert_eq!(e.header.signals[0].unit, "\u{b5}V");
    assert_eq!(e.header.signals[0].to_microvolts(), Some(1.0));
    assert_eq!(e.header.signals[1].label, "Cz é");
    let _ = std::fs::remove_dir_all(&d);
}

fn fe(window_s: f64) -> EegFrontend {
    EegFrontend::new(&EegConfig {
        sample_rate_hz: 100,
        window_s,
        highpass_hz: 0.0,
        lowpass_hz: 0.0,
        margin_s: 1.0,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn discontinuous_recordings_keep_their_gaps() {
    let d = tmp("edfd");
    let f = d.join("d.edf");
    let sig = |l: &str| {
        signal(
            l,
            100,
            (0..500).map(|i| (i % 100) as f64).collect(),
            Width::Edf,
        )
    };
    let mut w = spec(
        Width::Edf,
        Some(Plus::Discontinuous),
        vec![sig("C3"), sig("C4")],
    );
    w.record_onsets_s = Some(vec![0.0, 1.0, 10.0, 11.0, 12.0]);
    w.annotations = vec![
        Annotation {
            onset_s: 0.5,
            duration_s: None,
            text: "A".into(),
        },
        Annotation {
            onset_s: 10.2,
            duration_s: Some(1.0),
            text: "B".into(),
        },
        Annotation {
            onset_s: 1.5,
            duration_s: None,
            text: "A".into(),
        },
    ];
    edf::write(&f, &w).unwrap();
    let m = fe(1.0);
    let s = m.decode(&f).unwrap();
    assert_eq!((s.len, s.breaks.clone()), (500, vec![200]));
    // A window inside the second segment reads, one across the gap does not.
    let ok = m
        .decode(Path::new(&format!("{}#t=10.5,11.5", f.display())))
        .unwrap();
    assert_eq!(ok.len, 100);
    let e = m
        .decode(Path::new(&format!("{}#t=1.5,10.5", f.display())))
        .unwrap_err();
    assert!(
        e.to_string().contains("gap") && e.to_string().contains("d.edf"),
        "{e}"
    );
    // Fixed epochs stay inside segments; event epochs that would cross the gap are dropped.
    let fixed = epochs(
        &f,
        &EpochSpec {
            window_s: 1.0,
            stride_s: 1.0,
            events: vec![],
            offset_s: 0.0,
        },
    )
    .unwrap();
    let starts: Vec<f64> = fixed.iter().map(|e| e.onset_s).collect();
    assert_eq!(starts, vec![0.0, 1.0, 10.0, 11.0, 12.0]);
    let ev = epochs(
        &f,
        &EpochSpec {
            window_s: 1.0,
            stride_s: 1.0,
            events: vec![("A".into(), "a".into()), ("B".into(), "b".into())],
            offset_s: 0.0,
        },
    )
    .unwrap();
    let got: Vec<(f64, Option<String>)> = ev.into_iter().map(|e| (e.onset_s, e.label)).collect();
    assert_eq!(got, vec![(0.5, Some("a".into())), (10.2, Some("b".into()))]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_window_reads_the_same_values_as_the_whole_file() {
    let d = tmp("window");
    let f = d.join("w.edf");
    let mut rng = tessera_tokens::Rng::new(4);
    let sig = |l: &str, rng: &mut tessera_tokens::Rng| {
        signal(
            l,
            250,
            (0..250 * 30).map(|_| rng.normal() * 30.0).collect(),
            Width::Edf,
        )
    };
    let s = vec![
        sig("O1", &mut rng),
        sig("O2", &mut rng),
        sig("Pz", &mut rng),
    ];
    edf::write(&f, &spec(Width::Edf, None, s)).unwrap();
    let m = EegFrontend::new(&EegConfig {
        margin_s: 6.0,
        ..Default::default()
    })
    .unwrap();
    let whole = m.decode(&f).unwrap();
    let win = m
        .decode(Path::new(&format!("{}#t=12,16", f.display())))
        .unwrap();
    assert_eq!(win.len, 800);
    // Filter edge effects die out within the margin: the window matches the whole-file
    // decode to a small fraction of the signal's scale.
    let mut worst = 0.0f32;
    for c in 0..3 {
        let a = &whole.row(c)[2400..3200];
        for (x, y) in a.iter().zip(win.row(c)) {
            worst = worst.max((x - y).abs());
        }
    }
    assert!(
        worst < 0.5,
        "window differs from the whole file by {worst} µV"
    );
    let e = m
        .decode(Path::new(&format!("{}#t=28,32", f.display())))
        .unwrap_err();
    assert!(e.to_string().contains("not inside the recording"), "{e}");
    let e = m
        .decode(Path::new(&format!("{}#t=5,x", f.display())))
        .unwrap_err();
    assert!(e.to_string().contains("#t=START,END"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn files_without_eeg_are_clear_errors() {
    let d = tmp("noeeg");
    // An annotation-only EDF+ file (record duration 0 is allowed there).
    let f = d.join("ann.edf");
    let mut w = spec(Width::Edf, Some(Plus::Continuous), vec![]);
    w.record_duration_s = 0.0;
    w.record_onsets_s = Some(vec![0.0]);
    w.annotations = vec![Annotation {
        onset_s: 3.0,
        duration_s: Some(2.0),
        text: "sleep stage W".into(),
    }];
    edf::write(&f, &w).unwrap();
    let m = fe(1.0);
    let e = m.decode(&f).unwrap_err().to_string();
    assert!(
        e.contains("annotation-only") && e.contains("ann.edf"),
        "{e}"
    );
    let mut edf = Edf::open(&f).unwrap();
    assert_eq!(edf.annotations().unwrap().0[0].text, "sleep stage W");
    // Only ECG and an unknown label.
    let f = d.join("ecg.edf");
    let s = |l: &str| signal(l, 10, vec![0.0; 30], Width::Edf);
    edf::write(&f, &spec(Width::Edf, None, vec![s("ECG ECG"), s("X17")])).unwrap();
    let e = m.decode(&f).unwrap_err().to_string();
    assert!(e.contains("ECG ECG, X17") && e.contains("positions"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn signals_at_different_rates_are_resampled_to_one_grid() {
    let d = tmp("rates");
    let f = d.join("r.bdf");
    let tone = |rate: usize| -> Vec<f64> {
        (0..rate * 10)
            .map(|i| 100.0 * (std::f64::consts::TAU * 10.0 * i as f64 / rate as f64).sin())
            .collect()
    };
    let mut a = signal("C3", 512, tone(512), Width::Bdf);
    a.unit = "mV".into();
    a.data.iter_mut().for_each(|v| *v /= 1000.0);
    a.physical_min = -0.5;
    a.physical_max = 0.5;
    let b = signal("C4", 128, tone(128), Width::Bdf);
    edf::write(&f, &spec(Width::Bdf, None, vec![a, b])).unwrap();
    let m = EegFrontend::new(&EegConfig {
        reference: tessera_eeg::frontend::Reference::None,
        highpass_hz: 0.0,
        lowpass_hz: 0.0,
        ..Default::default()
    })
    .unwrap();
    let s = m.decode(&f).unwrap();
    assert_eq!((s.channels(), s.len), (2, 2000));
    // Both in µV at 200 Hz: the same 10 Hz tone of amplitude 100 µV.
    for c in 0..2 {
        let x = &s.row(c)[400..1600];
        let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((peak - 100.0).abs() < 3.0, "channel {c}: peak {peak} µV");
    }
    let diff = s.row(0)[400..1600]
        .iter()
        .zip(&s.row(1)[400..1600])
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 3.0, "channels differ by {diff} µV");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn real_files_match_pyedflib() -> Result<(), EegError> {
    let Some(root) = shared_data("eeg") else {
        return Ok(());
    };
    let g = json("golden_edf.json");
    for (rel, want) in g["files"].as_object().unwrap() {
        let mut e = Edf::open(&root.join(rel))?;
        let h = e.header.clone();
        assert_eq!(h.records as u64, want["records"].as_u64().unwrap(), "{rel}");
        let which = h.data_signals();
        let sigs = want["signals"].as_array().unwrap();
        assert_eq!(which.len(), sigs.len(), "{rel}");
        let got = e.read_physical(&which, 0, h.records)?;
        for ((&i, x), w) in which.iter().zip(&got).zip(sigs) {
            assert_eq!(h.signals[i].label, w["label"].as_str().unwrap().trim());
            assert_eq!(x.len() as u64, w["n"].as_u64().unwrap());
            assert!(
                (h.signals[i].rate_hz(h.record_duration_s) - w["rate_hz"].as_f64().unwrap()).abs()
                    < 1e-9
            );
            let first = floats(&w["first"]);
            assert!(max_abs_diff(&x[..8], &first) < 1e-9, "{rel} {}", w["label"]);
            let sum: f64 = x.iter().sum();
            let want_sum = w["sum"].as_f64().unwrap();
            assert!(
                (sum - want_sum).abs()
                    <= 1e-9
                        * want["signals"][0]["sum_sq"]
                            .as_f64()
                            .unwrap()
                            .sqrt()
                            .max(1.0)
                        * x.len() as f64,
                "{rel}: sum {sum} vs {want_sum}"
            );
        }
        let (ann, _) = e.annotations()?;
        let wa = want["annotations"].as_array().unwrap();
        assert_eq!(ann.len(), wa.len(), "{rel}");
        for (a, w) in ann.iter().zip(wa) {
            assert!((a.onset_s - w[0].as_f64().unwrap()).abs() < 1e-9);
            assert!((a.duration_s.unwrap_or(-1.0) - w[1].as_f64().unwrap()).abs() < 1e-9);
            assert_eq!(a.text, w[2].as_str().unwrap());
        }
        // Every EEG channel of both datasets has a position (64 of EEGMMIDB's labels such
        // as `Fc5.` and `Iz..`, EEGMAT's `EEG F3`).
        let m = EegFrontend::new(&EegConfig::default())?;
        let chosen = m.choose(&e)?;
        assert_eq!(chosen.len(), which.len(), "{rel}: {chosen:?}");
    }
    Ok(())
}
