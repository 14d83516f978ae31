//! Tessera's deployment runtime: ONNX Runtime (through `ort`) and whatever candle-free
//! domain readers the application registers; it names no domain itself.
//!
//! ```ignore
//! // An application that links the audio domain registers its reader:
//! let opts = tessera_runtime::Options::default().reader::<tessera_audio::AudioFrontend>();
//! let mut enc = tessera_runtime::Encoder::open_with("exports/fsdd-mae".as_ref(), &opts)?;
//! let e = enc.embed_file("clip.wav".as_ref())?; // [2D]: CLS ‖ mean patch
//! ```
//!
//! [`Encoder::open`] reads `model.toml`, loads `model.onnx`, and checks that the card
//! embedded in the graph's metadata and the graph's input widths agree with it. Files are
//! read through the [`Registry`] entry named by the card's `modality`. The ONNX Runtime
//! shared library is loaded at run time (`ort`'s `load-dynamic`): from `ORT_DYLIB_PATH`,
//! else from the Python environment `scripts/setup.sh` installs.

use ort::session::Session;
use ort::value::{Tensor, ValueType};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tessera_tokens::card::CARD_METADATA_KEY;
use tessera_tokens::{
    BoxError, Modality, ModelCard, Reader, Registry, SampleTokens, TokenError, Tokens,
};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("ONNX Runtime library: {0}")]
    Library(String),
    #[error("{path}: {msg}")]
    Card { path: PathBuf, msg: String },
    #[error("{path}: the graph does not match model.toml: {msg}")]
    Mismatch { path: PathBuf, msg: String },
    #[error("input shape: {0}")]
    Shape(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ONNX Runtime: {0}")]
    Ort(#[from] ort::Error),
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error("{path}: {source}")]
    Reader {
        path: PathBuf,
        #[source]
        source: BoxError,
    },
    /// A registered reader failed on a file (its error names the file).
    #[error("{0}")]
    File(#[source] BoxError),
    #[error("modality `{modality}` has no file reader registered in this application (registered: {registered})")]
    Modality {
        modality: String,
        registered: String,
    },
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

/// The ONNX Runtime version Tessera is built and tested against.
pub const ORT_VERSION: &str = "1.31.1";

/// Finds `libonnxruntime.so.*`: `ORT_DYLIB_PATH`, else the set-up script's environment
/// (`$TESSERA_CACHE` or `~/.cache/tessera`, `venv/lib/python3*/site-packages/onnxruntime/capi`).
pub fn find_library() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(RuntimeError::Library(format!(
            "ORT_DYLIB_PATH points to {}, which is not a file",
            p.display()
        )));
    }
    let cache = std::env::var_os("TESSERA_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tessera")));
    if let Some(lib) = cache.and_then(|c| std::fs::read_dir(c.join("venv/lib")).ok()) {
        for py in lib.flatten() {
            let capi = py.path().join("site-packages/onnxruntime/capi");
            let name = format!("libonnxruntime.so.{ORT_VERSION}");
            if capi.join(&name).is_file() {
                return Ok(capi.join(name));
            }
        }
    }
    Err(RuntimeError::Library(format!(
        "libonnxruntime.so.{ORT_VERSION} not found: run scripts/setup.sh, or set ORT_DYLIB_PATH \
         to the library inside the onnxruntime=={ORT_VERSION} wheel (onnxruntime/capi/)"
    )))
}

static ENV: OnceLock<std::result::Result<ort::environment::Environment, String>> = OnceLock::new();

/// The process-wide ONNX Runtime environment (the library is loaded once).
pub fn environment() -> Result<ort::environment::Environment> {
    ENV.get_or_init(|| {
        let lib = find_library().map_err(|e| e.to_string())?;
        ort::init_from(&lib)
            .map_err(|e| format!("loading {}: {e}", lib.display()))?
            .with_name("tessera")
            .build()
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(RuntimeError::Library)
}

/// Run-time options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Intra-op threads (0 = ONNX Runtime's default: all cores).
    pub threads: usize,
    /// File readers by modality name (empty: tokens only).
    pub readers: Registry,
}

impl Options {
    /// Registers the file reader of modality `M`.
    pub fn reader<M: Modality>(mut self) -> Self {
        self.readers.register::<M>();
        self
    }
}

/// Encoder outputs for a batch, row-major.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub b: usize,
    pub n: usize,
    pub d: usize,
    /// `[B, D]`
    pub cls: Vec<f32>,
    /// `[B, N, D]`
    pub patches: Vec<f32>,
    /// `[B, 2D]`: CLS ‖ mean of the real patches.
    pub embedding: Vec<f32>,
}

/// An exported encoder, ready to run.
pub struct Encoder {
    card: ModelCard,
    dir: PathBuf,
    session: Session,
    front: Option<Box<dyn Reader>>,
    registered: Vec<&'static str>,
}

fn read_card(dir: &Path) -> Result<ModelCard> {
    let path = dir.join("model.toml");
    let text = std::fs::read_to_string(&path).map_err(|source| RuntimeError::Io {
        path: path.clone(),
        source,
    })?;
    ModelCard::from_toml(&text).map_err(|e| RuntimeError::Card {
        path,
        msg: format!("not a Tessera model card: {e}"),
    })
}

fn input_width(outlet: &ort::value::Outlet) -> Option<i64> {
    match outlet.dtype() {
        ValueType::Tensor { shape, .. } => shape.last().copied(),
        _ => None,
    }
}

/// A session on an ONNX file.
fn session(path: &Path, opts: &Options) -> Result<Session> {
    let env = environment()?;
    if !path.is_file() {
        return Err(RuntimeError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let mut b = Session::builder(&env)?;
    if opts.threads > 0 {
        b = b
            .with_intra_threads(opts.threads)
            .map_err(ort::Error::from)?;
    }
    Ok(b.commit_from_file(path)?)
}

/// Opens a session on `path` and checks it against `card`.
pub fn open_session(path: &Path, card: &ModelCard, opts: &Options) -> Result<Session> {
    let session = session(path, opts)?;
    let mismatch = |msg: String| RuntimeError::Mismatch {
        path: path.to_path_buf(),
        msg,
    };
    let embedded = session
        .metadata()?
        .custom(CARD_METADATA_KEY)
        .ok_or_else(|| {
            mismatch(format!(
                "no `{CARD_METADATA_KEY}` metadata (not a Tessera export)"
            ))
        })?;
    let embedded = ModelCard::from_toml(&embedded)
        .map_err(|e| mismatch(format!("embedded card does not parse: {e}")))?;
    if &embedded != card {
        return Err(mismatch(format!(
            "the card inside the graph (`{}`, P={}, K={}, D={}) differs from model.toml (`{}`, P={}, K={}, D={})",
            embedded.name, embedded.tokens.p, embedded.tokens.k, embedded.encoder.dim,
            card.name, card.tokens.p, card.tokens.k, card.encoder.dim
        )));
    }
    Ok(session)
}

impl Encoder {
    /// Opens an export folder (`model.toml` + `model.onnx`) with default options.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, &Options::default())
    }

    pub fn open_with(dir: &Path, opts: &Options) -> Result<Self> {
        let card = read_card(dir)?;
        let path = dir.join(&card.onnx.tokens_model);
        let session = open_session(&path, &card, opts)?;
        let width = |name: &str| {
            session
                .inputs()
                .iter()
                .find(|o| o.name() == name)
                .and_then(input_width)
        };
        let (p, k) = (width("values"), width("coords"));
        if p != Some(card.tokens.p as i64) || k != Some(card.tokens.k as i64) {
            return Err(RuntimeError::Mismatch {
                path,
                msg: format!(
                    "graph inputs take P={p:?}, K={k:?}; the card says P={}, K={}",
                    card.tokens.p, card.tokens.k
                ),
            });
        }
        let front = opts
            .readers
            .reader(&card.modality, &card.frontend)
            .map_err(|source| RuntimeError::Reader {
                path: dir.join("model.toml"),
                source,
            })?;
        if let Some(r) = &front {
            let spec = r.token_spec();
            if spec.p != card.tokens.p || spec.k != card.tokens.k {
                return Err(RuntimeError::Mismatch {
                    path: dir.join("model.toml"),
                    msg: format!(
                        "the [frontend] table makes tokens with P={}, K={}; the card says P={}, K={}",
                        spec.p, spec.k, card.tokens.p, card.tokens.k
                    ),
                });
            }
        }
        Ok(Self {
            card,
            dir: dir.to_path_buf(),
            session,
            front,
            registered: opts.readers.names(),
        })
    }

    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The registered reader of the card's modality.
    pub fn reader(&self) -> Result<&dyn Reader> {
        self.front.as_deref().ok_or_else(|| RuntimeError::Modality {
            modality: self.card.modality.clone(),
            registered: if self.registered.is_empty() {
                "none".into()
            } else {
                self.registered.join(", ")
            },
        })
    }

    /// Runs a padded batch.
    pub fn run(&mut self, t: &Tokens) -> Result<Outputs> {
        let (p, k) = (self.card.tokens.p, self.card.tokens.k);
        if t.p != p || t.k != k {
            return Err(RuntimeError::Shape(format!(
                "tokens have P={} K={}, the model takes P={p} K={k}",
                t.p, t.k
            )));
        }
        let (b, n) = (t.b, t.n);
        let shape = |w: usize| vec![b as i64, n as i64, w as i64];
        let pad: Vec<f32> = t.padding.iter().map(|&x| x as f32).collect();
        let outputs = self.session.run(ort::inputs![
            "values" => Tensor::from_array((shape(p), t.values.clone()))?,
            "coords" => Tensor::from_array((shape(k), t.coords.clone()))?,
            "padding" => Tensor::from_array((vec![b as i64, n as i64], pad))?,
        ])?;
        let get = |name: &str| -> Result<Vec<f32>> {
            Ok(outputs[name].try_extract_tensor::<f32>()?.1.to_vec())
        };
        let cls = get("cls")?;
        Ok(Outputs {
            b,
            n,
            d: cls.len() / b.max(1),
            patches: get("patches")?,
            embedding: get("embedding")?,
            cls,
        })
    }

    /// Embeddings `[2D]` of each sample (batched by padding).
    pub fn embed_tokens(&mut self, samples: &[SampleTokens]) -> Result<Vec<Vec<f32>>> {
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.run(&Tokens::from_samples(samples)?)?;
        let w = 2 * out.d;
        Ok(out.embedding.chunks(w).map(|r| r.to_vec()).collect())
    }

    /// A file's embedding, through the domain reader and tokenizer the card describes.
    pub fn embed_file(&mut self, path: &Path) -> Result<Vec<f32>> {
        let t = self
            .reader()?
            .file_tokens(path)
            .map_err(RuntimeError::File)?;
        Ok(self.embed_tokens(&[t])?.remove(0))
    }
}

/// Any ONNX graph with f32 inputs and outputs, without a card (tests and benchmarks).
pub struct RawSession(Session);

/// A named f32 tensor: `(name, shape, row-major data)`.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

impl RawSession {
    pub fn open(path: &Path, opts: &Options) -> Result<Self> {
        Ok(Self(session(path, opts)?))
    }

    /// Runs the graph; returns every output in graph order.
    pub fn run(&mut self, inputs: &[(&str, &[usize], &[f32])]) -> Result<Vec<NamedTensor>> {
        let mut values = Vec::with_capacity(inputs.len());
        for (name, shape, data) in inputs {
            let n: usize = shape.iter().product();
            if n != data.len() {
                return Err(RuntimeError::Shape(format!(
                    "input `{name}`: shape {shape:?} holds {n} values, got {}",
                    data.len()
                )));
            }
            let s: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            values.push((
                std::borrow::Cow::<str>::Owned(name.to_string()),
                ort::session::SessionInputValue::from(Tensor::from_array((s, data.to_vec()))?),
            ));
        }
        let names: Vec<String> = self
            .0
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let out = self.0.run(values)?;
        names
            .into_iter()
            .map(|n| {
                let (shape, data) = out[n.as_str()].try_extract_tensor::<f32>()?;
                let shape = shape.iter().map(|&d| d as usize).collect();
                Ok((n, shape, data.to_vec()))
            })
            .collect()
    }
}
