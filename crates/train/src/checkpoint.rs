//! Atomic checkpoints: `run/checkpoints/step-00000100/` holds `model.safetensors`,
//! `optimizer.safetensors`, `state.json` and the resolved `config.toml`. It is written in a
//! temporary folder and renamed into place, then `run/checkpoints/latest` (also written
//! by rename) points at it; older ones beyond `keep` are removed last. A crash at any
//! point leaves the previous good checkpoint reachable.

use crate::optim::AdamW;
use crate::{io_err, Result, TrainError};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tessera_core::ParamStore;

#[derive(Debug, Serialize, Deserialize)]
struct State {
    step: u64,
    tessera_version: String,
}

/// A checkpoint folder.
pub struct Checkpoint {
    pub dir: PathBuf,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// Writes a checkpoint for `step` and returns its folder.
pub fn save(
    run_dir: &Path,
    step: u64,
    store: &ParamStore,
    opt: &AdamW,
    config_toml: &str,
    keep: usize,
) -> Result<PathBuf> {
    let root = run_dir.join("checkpoints");
    std::fs::create_dir_all(&root).map_err(|e| io_err(&root, e))?;
    let name = format!("step-{step:08}");
    let tmp = root.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    let model = tmp.join("model.safetensors");
    candle_core::safetensors::save(&store.tensors(), &model).map_err(|e| io_err(&model, e))?;
    let mut moments: HashMap<String, Tensor> = HashMap::new();
    for (k, v) in opt.m.iter() {
        moments.insert(
            format!("m.{k}"),
            Tensor::from_slice(v, v.len(), &Device::Cpu)?,
        );
    }
    for (k, v) in opt.v.iter() {
        moments.insert(
            format!("v.{k}"),
            Tensor::from_slice(v, v.len(), &Device::Cpu)?,
        );
    }
    let optim = tmp.join("optimizer.safetensors");
    candle_core::safetensors::save(&moments, &optim).map_err(|e| io_err(&optim, e))?;
    let state = State {
        step,
        tessera_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let state_path = tmp.join("state.json");
    std::fs::write(
        &state_path,
        serde_json::to_vec_pretty(&state).map_err(|e| io_err(&state_path, e))?,
    )
    .map_err(|e| io_err(&state_path, e))?;
    let cfg_path = tmp.join("config.toml");
    std::fs::write(&cfg_path, config_toml).map_err(|e| io_err(&cfg_path, e))?;
    let dir = root.join(&name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| io_err(&dir, e))?;
    write_atomic(&root.join("latest"), name.as_bytes())?;
    // Prune the oldest, never the one just written.
    let mut all: Vec<PathBuf> = std::fs::read_dir(&root)
        .map_err(|e| io_err(&root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("step-"))
        })
        .collect();
    all.sort();
    while all.len() > keep {
        let old = all.remove(0);
        if old != dir {
            let _ = std::fs::remove_dir_all(&old);
        }
    }
    Ok(dir)
}

/// The checkpoint `run/checkpoints/latest` points at, if any.
pub fn latest_checkpoint(run_dir: &Path) -> Result<Option<Checkpoint>> {
    let root = run_dir.join("checkpoints");
    let latest = root.join("latest");
    if !latest.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&latest).map_err(|e| io_err(&latest, e))?;
    let dir = root.join(name.trim());
    if !dir.join("model.safetensors").exists() {
        return Err(io_err(
            &latest,
            format!(
                "points at {}, which has no model.safetensors",
                dir.display()
            ),
        ));
    }
    Ok(Some(Checkpoint { dir }))
}

impl Checkpoint {
    /// The resolved configuration saved with the checkpoint.
    pub fn config_toml(&self) -> Result<String> {
        let p = self.dir.join("config.toml");
        std::fs::read_to_string(&p).map_err(|e| io_err(&p, e))
    }

    pub fn model_path(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }

    /// The step the checkpoint was written at.
    pub fn step(&self) -> Result<u64> {
        let p = self.dir.join("state.json");
        let s: State = serde_json::from_slice(&std::fs::read(&p).map_err(|e| io_err(&p, e))?)
            .map_err(|e| io_err(&p, e))?;
        Ok(s.step)
    }

    /// Restores weights and optimiser moments; returns the step.
    pub fn load(&self, store: &ParamStore, opt: &mut AdamW) -> Result<u64> {
        store.load_safetensors(&self.model_path(), "")?;
        let p = self.dir.join("optimizer.safetensors");
        let t = candle_core::safetensors::load(&p, &Device::Cpu).map_err(|e| io_err(&p, e))?;
        for (prefix, map) in [("m", &mut opt.m), ("v", &mut opt.v)] {
            for (name, buf) in map.iter_mut() {
                let key = format!("{prefix}.{name}");
                let x = t.get(&key).ok_or_else(|| TrainError::File {
                    path: p.clone(),
                    reason: format!("missing `{key}`"),
                })?;
                let x = x.to_vec1::<f32>()?;
                if x.len() != buf.len() {
                    return Err(io_err(
                        &p,
                        format!("`{key}` has {} values, expected {}", x.len(), buf.len()),
                    ));
                }
                *buf = x;
            }
        }
        self.step()
    }
}
