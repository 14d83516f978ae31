//! Channel labels → signal types and electrode positions.
//!
//! Positions are the 10-05 system of MNE's `standard_1005` montage in millimetres, head
//! frame (x right, y toward the nasion, z up; `positions_1005.csv`, written by
//! `scripts/eeg_positions.py`). A label is matched after:
//! - a type prefix (`EEG Fp1`, `EOG ROC`, `ECG ECG`) is read and dropped;
//! - trailing dots are dropped (`Fc5.`, `Iz..` as in EEGMMIDB) and case is ignored
//!   (`FP1`);
//! - a reference suffix is dropped (`Fp1-REF`, `C3-LE`, `O1-A2`, `Cz-AVG`);
//! - old 10-20 names are aliased (T3→T7, T4→T8, T5→P7, T6→P8);
//! - a bipolar derivation of two known electrodes (`Fp1-F7`) sits at their midpoint.
//!
//! User positions (`[eeg] positions`) are looked up first, under the whole label, so a
//! custom cap, or a non-EEG channel a user wants as a token, is one table in the card.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::OnceLock;

/// What a signal measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Eeg,
    /// An ear or mastoid reference electrode (A1, A2, M1, M2) recorded as a signal.
    Reference,
    Eog,
    Emg,
    Ecg,
    Respiration,
    Trigger,
    Annotation,
    /// Anything else (temperature, SpO2, a label with no known position).
    Other,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Eeg => "EEG",
            Kind::Reference => "reference",
            Kind::Eog => "EOG",
            Kind::Emg => "EMG",
            Kind::Ecg => "ECG",
            Kind::Respiration => "respiration",
            Kind::Trigger => "trigger",
            Kind::Annotation => "annotation",
            Kind::Other => "other",
        }
    }
}

/// A user-declared electrode (custom caps, or any channel to keep as a token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPosition {
    /// The label as the files write it (matched ignoring case and surrounding spaces).
    pub label: String,
    /// (x, y, z) in mm, head frame (x right, y anterior, z up).
    pub mm: [f32; 3],
}

/// A classified channel label.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub kind: Kind,
    /// The standard name (`Fp1`, `T7`, `Fp1-F7`), when a position is known.
    pub name: Option<String>,
    pub mm: Option<[f32; 3]>,
}

fn table() -> &'static HashMap<String, (String, [f32; 3])> {
    static T: OnceLock<HashMap<String, (String, [f32; 3])>> = OnceLock::new();
    T.get_or_init(|| {
        let mut m = HashMap::new();
        for line in include_str!("positions_1005.csv").lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != 4 {
                continue;
            }
            let p = [f[1], f[2], f[3]].map(|v| v.trim().parse::<f32>().unwrap_or(f32::NAN));
            m.insert(f[0].to_ascii_lowercase(), (f[0].to_string(), p));
        }
        m
    })
}

/// The standard position of an electrode name (case ignored, old names aliased).
pub fn standard(name: &str) -> Option<(String, [f32; 3])> {
    let lower = name.trim().to_ascii_lowercase();
    let alias = match lower.as_str() {
        "t3" => "t7",
        "t4" => "t8",
        "t5" => "p7",
        "t6" => "p8",
        other => other,
    };
    table().get(alias).cloned()
}

/// Number of standard positions known.
pub fn standard_count() -> usize {
    table().len()
}

const REFERENCES: &[&str] = &[
    "ref", "le", "re", "ar", "avg", "av", "ave", "a1", "a2", "m1", "m2", "a1a2", "m1m2", "linked",
    "lm", "cref",
];

fn prefix_kind(word: &str) -> Option<Kind> {
    match word.to_ascii_lowercase().as_str() {
        "eeg" => Some(Kind::Eeg),
        "eog" | "heog" | "veog" => Some(Kind::Eog),
        "emg" => Some(Kind::Emg),
        "ecg" | "ekg" => Some(Kind::Ecg),
        "resp" | "respiration" => Some(Kind::Respiration),
        _ => None,
    }
}

/// Classifies a signal label; `user` positions are matched first.
pub fn classify(label: &str, user: &[UserPosition]) -> Channel {
    let trimmed = label.trim();
    if let Some(u) = user
        .iter()
        .find(|u| u.label.trim().eq_ignore_ascii_case(trimmed))
    {
        return Channel {
            kind: Kind::Eeg,
            name: Some(u.label.trim().to_string()),
            mm: Some(u.mm),
        };
    }
    let lower = trimmed.to_ascii_lowercase();
    if lower.ends_with("annotations") {
        return other(Kind::Annotation);
    }
    if ["status", "trigger", "trig", "event", "marker", "stim"]
        .iter()
        .any(|k| lower == *k || lower.starts_with(&format!("{k} ")))
    {
        return other(Kind::Trigger);
    }
    let (mut kind, rest) = match trimmed.split_once(char::is_whitespace) {
        Some((p, r)) => match prefix_kind(p) {
            Some(k) => (Some(k), r.trim()),
            None => (None, trimmed),
        },
        None => (None, trimmed),
    };
    if kind.is_none() {
        for (keys, k) in [
            (&["eog", "loc", "roc"][..], Kind::Eog),
            (&["emg", "chin"][..], Kind::Emg),
            (&["ecg", "ekg"][..], Kind::Ecg),
            (
                &["resp", "thor", "abdo", "airflow", "flow"][..],
                Kind::Respiration,
            ),
            (
                &["spo2", "pleth", "temp", "pulse", "light", "position"][..],
                Kind::Other,
            ),
        ] {
            if keys.iter().any(|key| lower.contains(key)) {
                kind = Some(k);
            }
        }
    }
    if kind.is_some_and(|k| k != Kind::Eeg) {
        return other(kind.unwrap_or(Kind::Other));
    }
    let clean = rest.trim_end_matches('.').trim();
    let (a, b) = match clean.split_once('-') {
        Some((a, b)) => (a.trim().trim_end_matches('.'), Some(b.trim())),
        None => (clean, None),
    };
    let Some((a_name, a_mm)) = standard(a) else {
        return other(Kind::Other);
    };
    let a_lower = a_name.to_ascii_lowercase();
    let is_ref = |n: &str| ["a1", "a2", "m1", "m2"].contains(&n);
    match b {
        Some(b) if !REFERENCES.contains(&b.to_ascii_lowercase().as_str()) => match standard(b) {
            Some((b_name, b_mm)) => Channel {
                kind: Kind::Eeg,
                name: Some(format!("{a_name}-{b_name}")),
                mm: Some([0, 1, 2].map(|i| (a_mm[i] + b_mm[i]) / 2.0)),
            },
            None => eeg(a_name, a_mm),
        },
        _ if is_ref(&a_lower) => Channel {
            kind: Kind::Reference,
            name: Some(a_name),
            mm: Some(a_mm),
        },
        _ => eeg(a_name, a_mm),
    }
}

fn eeg(name: String, mm: [f32; 3]) -> Channel {
    Channel {
        kind: Kind::Eeg,
        name: Some(name),
        mm: Some(mm),
    }
}

fn other(kind: Kind) -> Channel {
    Channel {
        kind,
        name: None,
        mm: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(l: &str) -> Option<String> {
        let c = classify(l, &[]);
        (c.kind == Kind::Eeg).then_some(c.name).flatten()
    }

    #[test]
    fn labels_from_many_writers_match() {
        assert_eq!(name("EEG Fp1-REF").as_deref(), Some("Fp1"));
        assert_eq!(name("FP1").as_deref(), Some("Fp1"));
        assert_eq!(name("Fc5.").as_deref(), Some("FC5"));
        assert_eq!(name("Iz..").as_deref(), Some("Iz"));
        assert_eq!(name("T3").as_deref(), Some("T7"));
        assert_eq!(name("EEG T6-LE").as_deref(), Some("P8"));
        assert_eq!(name("EEG F3").as_deref(), Some("F3"));
        assert_eq!(name("O1-A2").as_deref(), Some("O1"));
        assert_eq!(name("Fp1-F7").as_deref(), Some("Fp1-F7"));
        let c = classify("Fp1-F7", &[]).mm.unwrap();
        let (a, b) = (standard("Fp1").unwrap().1, standard("F7").unwrap().1);
        assert!((c[0] - (a[0] + b[0]) / 2.0).abs() < 1e-4);
    }

    #[test]
    fn non_eeg_signals_are_typed() {
        assert_eq!(classify("EDF Annotations", &[]).kind, Kind::Annotation);
        assert_eq!(classify("ECG ECG", &[]).kind, Kind::Ecg);
        assert_eq!(classify("EOG ROC-A2", &[]).kind, Kind::Eog);
        assert_eq!(classify("EMG Chin", &[]).kind, Kind::Emg);
        assert_eq!(classify("Status", &[]).kind, Kind::Trigger);
        assert_eq!(classify("Resp oro-nasal", &[]).kind, Kind::Respiration);
        assert_eq!(classify("EEG A2-A1", &[]).kind, Kind::Reference);
        assert_eq!(classify("X17", &[]).kind, Kind::Other);
    }

    #[test]
    fn user_positions_come_first() {
        let u = [UserPosition {
            label: "X17".into(),
            mm: [1.0, 2.0, 3.0],
        }];
        let c = classify(" x17 ", &u);
        assert_eq!((c.kind, c.mm), (Kind::Eeg, Some([1.0, 2.0, 3.0])));
    }

    #[test]
    fn the_table_is_the_10_05_system() {
        assert!(standard_count() > 300, "{}", standard_count());
        let cz = standard("Cz").unwrap().1;
        assert!(cz[0].abs() < 5.0 && cz[2] > 80.0, "{cz:?}");
        let fp1 = standard("Fp1").unwrap().1;
        assert!(fp1[0] < 0.0 && fp1[1] > 80.0, "{fp1:?}");
    }
}
