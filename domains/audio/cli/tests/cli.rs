//! The `tessera-audio` binary as a user meets it: bad files are skipped and counted (or
//! fatal with --strict), a folder with nothing usable fails, and the demo pretrains and
//! probes on a generated dataset.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera-audio"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-audio-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A RIFF/WAVE file with the given format tag, channels, rate, bits and data bytes.
fn wav_bytes(
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    data: &[u8],
    claimed_data_len: Option<u32>,
) -> Vec<u8> {
    let mut b = Vec::new();
    let data_len = claimed_data_len.unwrap_or(data.len() as u32);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&tag.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    let block = channels * bits / 8;
    b.extend_from_slice(&(rate * block as u32).to_le_bytes());
    b.extend_from_slice(&block.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    b.extend_from_slice(data);
    b
}

fn bad_files(dir: &Path) {
    std::fs::write(dir.join("notes.wav"), b"this is not audio at all").unwrap();
    std::fs::write(dir.join("empty.wav"), wav_bytes(1, 1, 8000, 16, &[], None)).unwrap();
    std::fs::write(
        dir.join("alaw.wav"),
        wav_bytes(6, 1, 8000, 8, &[0x55; 4000], None),
    )
    .unwrap();
    std::fs::write(
        dir.join("truncated.wav"),
        wav_bytes(1, 1, 8000, 16, &[0u8; 1000], Some(4_000_000_000)),
    )
    .unwrap();
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn pretrain_skips_bad_files_and_strict_fails() {
    let d = tmp("bad");
    let data = d.join("data");
    tessera_audio::synth::write_dataset(&data, 2, 5, 8000, 1).unwrap();
    bad_files(&data);
    let o = bin()
        .args([
            "pretrain",
            "--preset",
            "audio-nano-demo",
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--data",
        ])
        .arg(&data)
        .arg("--out")
        .arg(d.join("run"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("skipped 4 unreadable file(s)"),
        "{}",
        text(&o)
    );
    assert!(d.join("run/checkpoints/latest").exists());

    let o = bin()
        .args([
            "pretrain",
            "--strict",
            "--preset",
            "audio-nano-demo",
            "--steps",
            "2",
            "--data",
        ])
        .arg(&data)
        .arg("--out")
        .arg(d.join("strict"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("error:") && t.contains(".wav"), "{t}");
    assert_eq!(
        t.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{t}"
    );
}

#[test]
fn folder_without_usable_files_is_an_error() {
    let d = tmp("nothing");
    bad_files(&d);
    let o = bin()
        .args([
            "pretrain",
            "--preset",
            "audio-nano-demo",
            "--steps",
            "1",
            "--data",
        ])
        .arg(&d)
        .arg("--out")
        .arg(d.join("run"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("no readable audio file"), "{}", text(&o));
    let o = bin()
        .args(["inspect"])
        .arg(d.join("alaw.wav"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("alaw.wav") && t.to_lowercase().contains("a-law"),
        "{t}"
    );
}

#[test]
fn demo_pretrains_and_probes_a_generated_dataset() {
    let d = tmp("demo");
    let o = bin()
        .args(["demo", "--steps", "6", "--out"])
        .arg(&d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let csv = std::fs::read_to_string(d.join("results/results.csv")).unwrap();
    assert!(csv.lines().count() >= 1 + 6 + 6 + 2, "{csv}");
    // The log-mel baseline separates the generated classes far above chance (1/6).
    let md = std::fs::read_to_string(d.join("results/results.md")).unwrap();
    let logmel_linear = md
        .lines()
        .find(|l| l.starts_with("| logmel | label | linear"))
        .unwrap();
    let acc: f64 = logmel_linear
        .split('|')
        .nth(6)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(acc > 60.0, "{logmel_linear}");
    // The resolved config with its dataset statistics is saved with the checkpoint.
    let cfg = std::fs::read_to_string(d.join("run/checkpoints/step-00000006/config.toml")).unwrap();
    assert!(cfg.contains("[audio.norm]"), "{cfg}");
}

#[test]
fn help_shows_examples() {
    for sub in ["pretrain", "embed", "probe", "stats", "inspect", "demo"] {
        let o = bin().args([sub, "--help"]).output().unwrap();
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Example:"),
            "{sub}"
        );
    }
}

/// On the real Free Spoken Digit Dataset (when `../shared/data` is present): the whole
/// decode → resample → log-mel → probe path reaches the published log-mel baseline level.
#[test]
fn fsdd_logmel_baseline_when_present() {
    let Some(fsdd) = tessera_tokens::resources::shared_data("audio/fsdd/labels.csv") else {
        return;
    };
    let d = tmp("fsdd");
    let o = bin()
        .args([
            "probe",
            "--baseline",
            "logmel",
            "--label-column",
            "digit",
            "--split-column",
            "official_split",
            "--data",
        ])
        .arg(&fsdd)
        .arg("--out")
        .arg(&d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let md = String::from_utf8_lossy(&o.stdout);
    let row = md.lines().find(|l| l.contains("| linear |")).unwrap();
    let acc: f64 = row.split('|').nth(6).unwrap().trim().parse().unwrap();
    assert!(acc > 90.0, "{row}");
    assert!(
        row.contains("| 300 |"),
        "the official test split has 300 clips: {row}"
    );
}

/// Compressed files go through every subcommand like WAV: `embed` over the codec fixtures
/// (FLAC, MP3, Ogg Vorbis, M4A, AIFF, CAF) writes one row per decodable file and skips the
/// Opus file with its reason; `inspect` names the codec.
#[test]
fn compressed_audio_embeds_and_inspects() {
    let d = tmp("codecs");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/codecs");
    let o = bin()
        .args([
            "embed",
            "--random-init",
            "--preset",
            "audio-nano-demo",
            "--data",
        ])
        .arg(&fixtures)
        .arg("--out")
        .arg(d.join("emb"))
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let files = std::fs::read_to_string(d.join("emb/files.txt")).unwrap();
    let n = files.lines().filter(|l| !l.trim().is_empty()).count();
    // 13 short fixtures and 5 in long/; Opus needs libopus at run time, without it the
    // five Opus files are reported.
    if tessera_audio::opus::available() {
        assert_eq!(n, 18, "{files}");
        assert!(files.contains("surround51.opus"), "{files}");
    } else {
        assert_eq!(n, 13, "{files}");
        assert!(t.contains("libopus"), "{t}");
    }
    let o = bin()
        .arg("inspect")
        .arg(fixtures.join("stereo_sndfile.mp3"))
        .output()
        .unwrap();
    let t = text(&o);
    assert!(
        o.status.success() && t.contains("mp3") && t.contains("44100"),
        "{t}"
    );
}

/// A 25 s recording as windows: `--window 10` gives three rows (0-10, 10-20, 15-25) with
/// their times in windows.csv, each the same as embedding that window alone; with
/// `--pool-windows` one row, their mean.
#[test]
fn long_recordings_embed_per_window_or_pooled() {
    let d = tmp("windows");
    let rate = 8000u32;
    let pcm: Vec<u8> = (0..25 * rate as usize)
        .flat_map(|i| {
            let t = i as f64 / f64::from(rate);
            let x = 0.3 * (2.0 * std::f64::consts::PI * (200.0 + 20.0 * t) * t).sin();
            ((x * 32767.0) as i16).to_le_bytes()
        })
        .collect();
    std::fs::write(d.join("long.wav"), wav_bytes(1, 1, rate, 16, &pcm, None)).unwrap();
    let embed = |extra: &[&str], data: &Path, out: &str| {
        let o = bin()
            .args([
                "embed",
                "--random-init",
                "--preset",
                "audio-nano-demo",
                "--data",
            ])
            .arg(data)
            .arg("--out")
            .arg(d.join(out))
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let npy = std::fs::read(d.join(out).join("embeddings.npy")).unwrap();
        let header = u16::from_le_bytes([npy[8], npy[9]]) as usize + 10;
        npy[header..]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect::<Vec<f32>>()
    };
    let all = embed(&["--window", "10"], &d.join("long.wav"), "win");
    let csv = std::fs::read_to_string(d.join("win/windows.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(
        rows[0].contains(",0,10,") && rows[2].contains(",15,25,"),
        "{csv}"
    );
    let w = all.len() / 3;
    let one = embed(&[], &d.join("long.wav#t=10,20"), "one");
    assert_eq!(one.len(), w);
    for (a, b) in one.iter().zip(&all[w..2 * w]) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    let pooled = embed(
        &["--window", "10", "--pool-windows"],
        &d.join("long.wav"),
        "pool",
    );
    assert_eq!(pooled.len(), w);
    for (j, p) in pooled.iter().enumerate() {
        let mean = (all[j] + all[w + j] + all[2 * w + j]) / 3.0;
        assert!((p - mean).abs() < 1e-5, "{p} vs {mean}");
    }
    let files = std::fs::read_to_string(d.join("pool/files.txt")).unwrap();
    assert_eq!(files.trim(), d.join("long.wav").display().to_string());
    // Pretraining draws from the windows too (2 s hops: 9 windows of the recording).
    let o = bin()
        .args([
            "pretrain",
            "--preset",
            "audio-nano-demo",
            "--steps",
            "2",
            "--batch-size",
            "4",
        ])
        .args(["--window", "10", "--hop", "2", "--threads", "1", "--data"])
        .arg(d.join("long.wav"))
        .arg("--out")
        .arg(d.join("run"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(d.join("run/checkpoints").is_dir());
}
