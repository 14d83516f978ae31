//! The runtime on its own: opening an export folder (and refusing broken ones with errors
//! that name the file), running tokens against candle, and reading files only through the
//! readers an application registers (here a test modality; the runtime names no domain).

use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tessera_core::{Encoder, EncoderConfig, ParamStore, TokenTensors};
use tessera_runtime::{Encoder as Runtime, Options, RuntimeError};
use tessera_tokens::card::Training;
use tessera_tokens::{
    CoordAxis, InfoRow, Modality, ModelCard, Rng, SampleTokens, TokenLayout, TokenSpec, Tokens,
};

const P: usize = 3;

fn ort_ready() -> bool {
    match tessera_runtime::environment() {
        Ok(_) => true,
        Err(e) if tessera_tokens::resources::required("TESSERA_REQUIRE_ORT") => {
            panic!("TESSERA_REQUIRE_ORT=1 but {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            false
        }
    }
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-runtime-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A test modality: `.rows` text files, one token of `P` values per line, its line
/// number as the coordinate; `scale` multiplies every value (the card's front end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RowsConfig {
    scale: f32,
}

struct Rows(RowsConfig);

#[derive(Debug, thiserror::Error)]
#[error("{path}: {msg}")]
struct RowsError {
    path: PathBuf,
    msg: String,
}

impl Modality for Rows {
    const NAME: &'static str = "rows";
    const EXTENSIONS: &'static [&'static str] = &["rows"];
    type Config = RowsConfig;
    type Sample = SampleTokens;
    type Stats = ();
    type Error = RowsError;
    fn new(cfg: &RowsConfig) -> Result<Self, RowsError> {
        Ok(Rows(cfg.clone()))
    }
    fn config(&self) -> &RowsConfig {
        &self.0
    }
    fn token_spec(&self) -> TokenSpec {
        spec()
    }
    fn decode(&self, path: &Path) -> Result<SampleTokens, RowsError> {
        let err = |msg: String| RowsError {
            path: path.to_path_buf(),
            msg,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut values = Vec::new();
        for line in text.lines() {
            let v: Vec<f32> = line
                .split_whitespace()
                .map(|x| x.parse::<f32>().map_err(|e| err(e.to_string())))
                .collect::<Result<_, _>>()?;
            if v.len() != P {
                return Err(err(format!("a row of {} values, expected {P}", v.len())));
            }
            values.extend(v.iter().map(|x| x * self.0.scale));
        }
        let n = values.len() / P;
        SampleTokens::new(values, (0..n).map(|i| i as f32).collect(), n, P, 1)
            .map_err(|e| err(e.to_string()))
    }
    fn sample_bytes(s: &SampleTokens) -> usize {
        s.values.len() * 4
    }
    fn train_view(&self, s: &SampleTokens, _: &mut Rng) -> Result<SampleTokens, RowsError> {
        Ok(s.clone())
    }
    fn eval_view(&self, s: &SampleTokens) -> Result<SampleTokens, RowsError> {
        Ok(s.clone())
    }
    fn random_sample(&self, rng: &mut Rng) -> Result<SampleTokens, RowsError> {
        Ok(sample(4, rng))
    }
    fn stats_start(&self) -> Option<()> {
        None
    }
    fn stats_add(&self, _: &mut (), _: &SampleTokens) {}
    fn stats_finish(&self, _: ()) -> Result<RowsConfig, RowsError> {
        Ok(self.0.clone())
    }
    fn inspect(&self, path: &Path) -> Result<InfoRow, RowsError> {
        let s = self.decode(path)?;
        Ok(vec![("tokens".into(), s.n.to_string())])
    }
    fn baseline(&self, name: &str, _: &SampleTokens) -> Result<Vec<f32>, RowsError> {
        Err(RowsError {
            path: PathBuf::new(),
            msg: format!("no baseline {name}"),
        })
    }
    fn write_demo_data(dir: &Path, _: u64) -> Result<PathBuf, RowsError> {
        Ok(dir.to_path_buf())
    }
}

fn spec() -> TokenSpec {
    TokenSpec {
        p: P,
        k: 1,
        value_unit: "a.u.".into(),
        axes: vec![CoordAxis {
            name: "row".into(),
            unit: "line".into(),
            scale: 8.0,
        }],
        layout: TokenLayout::Set,
    }
}

fn sample(n: usize, rng: &mut Rng) -> SampleTokens {
    let values = (0..n * P).map(|_| rng.normal() as f32).collect();
    SampleTokens::new(values, (0..n).map(|i| i as f32).collect(), n, P, 1).unwrap()
}

fn encoder() -> Encoder {
    let mut cfg = EncoderConfig::preset("nano", P, vec![8.0]).unwrap();
    cfg.depth = 1;
    let mut store = ParamStore::new(4, &Device::Cpu);
    Encoder::new(&cfg, &mut store, "encoder").unwrap()
}

fn exported(tag: &str) -> (Encoder, PathBuf) {
    let enc = encoder();
    let frontend = toml::Table::try_from(RowsConfig { scale: 2.0 }).unwrap();
    let card = ModelCard::new("rows-test", "rows", spec(), Training::default(), frontend);
    let dir = tmp(tag);
    tessera_export::export(&enc, &card, None, &dir).unwrap();
    (enc, dir)
}

fn candle(enc: &Encoder, t: &Tokens) -> Vec<f32> {
    enc.embed(&TokenTensors::from_tokens(t, &Device::Cpu).unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn missing_or_broken_folders_are_errors_naming_the_file() {
    let d = tmp("broken");
    let e = Runtime::open(&d).err().expect("opened an empty folder");
    assert!(matches!(e, RuntimeError::Io { .. }), "{e}");
    assert!(e.to_string().contains("model.toml"), "{e}");
    std::fs::write(d.join("model.toml"), "name = 3").unwrap();
    let e = Runtime::open(&d).err().expect("opened a bad card");
    assert!(e.to_string().contains("not a Tessera model card"), "{e}");
}

#[test]
fn tokens_run_like_candle_and_files_need_a_registered_reader() {
    if !ort_ready() {
        return;
    }
    let (enc, dir) = exported("run");
    let mut rt = Runtime::open(&dir).unwrap();
    assert_eq!(rt.card().modality, "rows");
    let mut rng = Rng::new(1);
    let t = Tokens::from_samples(&[sample(5, &mut rng), sample(2, &mut rng)]).unwrap();
    let out = rt.run(&t).unwrap();
    assert_eq!((out.b, out.n), (2, 5));
    assert!(max_diff(&out.embedding, &candle(&enc, &t)) <= 1e-4);
    // Tokens of the wrong width are refused.
    let wide =
        Tokens::from_samples(&[SampleTokens::new(vec![0.0; 4], vec![0.0], 1, 4, 1).unwrap()])
            .unwrap();
    assert!(matches!(rt.run(&wide), Err(RuntimeError::Shape(_))));

    // A file: no reader registered, then the test modality's reader (the card's
    // front-end table sets its scale).
    let f = dir.join("a.rows");
    std::fs::write(&f, "1 2 3\n4 5 6\n").unwrap();
    let e = rt.embed_file(&f).unwrap_err().to_string();
    assert!(
        e.contains("`rows`") && e.contains("registered: none"),
        "{e}"
    );
    let mut rt = Runtime::open_with(&dir, &Options::default().reader::<Rows>()).unwrap();
    let got = rt.embed_file(&f).unwrap();
    let want_t = SampleTokens::new(
        vec![2.0, 4.0, 6.0, 8.0, 10.0, 12.0],
        vec![0.0, 1.0],
        2,
        P,
        1,
    )
    .unwrap();
    let want = candle(&enc, &Tokens::from_samples(&[want_t]).unwrap());
    assert!(max_diff(&got, &want) <= 1e-4);
    // A bad file: the reader's error, naming it.
    std::fs::write(&f, "1 2\n").unwrap();
    let e = rt.embed_file(&f).unwrap_err().to_string();
    assert!(e.contains("a.rows") && e.contains("expected 3"), "{e}");
}

#[test]
fn a_card_that_differs_from_the_graph_is_refused() {
    if !ort_ready() {
        return;
    }
    let (_, dir) = exported("mismatch");
    let path = dir.join("model.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("rows-test", "renamed")).unwrap();
    let e = Runtime::open(&dir).err().expect("a mismatched card opened");
    assert!(matches!(e, RuntimeError::Mismatch { .. }), "{e}");
    assert!(e.to_string().contains("model.onnx"), "{e}");
}
