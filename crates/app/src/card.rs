//! The run card: a modality's front-end table plus the encoder, recipe, training and probe
//! settings, resolved from a preset, `--config` and flags, and saved with every checkpoint
//! so a run folder rebuilds itself.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::path::Path;
use tessera_cli::{CommonArgs, Presets};
use tessera_core::{EncoderConfig, EncoderSpec};
use tessera_eval::ProbeConfig;
use tessera_recipes::RecipeConfig;
use tessera_tokens::Modality;
use tessera_train::{latest_checkpoint, TrainConfig};

fn default_cache_mb() -> usize {
    1024
}

/// Everything of a card except the modality's table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CardCore {
    pub name: String,
    pub seed: u64,
    /// Decoded samples kept in memory while training, in MB (least recently used evicted).
    #[serde(default = "default_cache_mb")]
    pub cache_mb: usize,
    pub encoder: EncoderSpec,
    pub recipe: RecipeConfig,
    pub train: TrainConfig,
    #[serde(default)]
    pub probe: ProbeConfig,
    /// The data `pretrain` read (recorded for the deployment card).
    #[serde(default)]
    pub data: String,
    /// Tables of domain subcommands (e.g. `[segment]`), kept as written.
    #[serde(flatten)]
    pub extra: toml::Table,
}

impl CardCore {
    /// The recipe's `kind` as written in cards.
    pub fn recipe_kind(&self) -> String {
        toml::Value::try_from(&self.recipe)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(String::from))
            .unwrap_or_default()
    }
}

/// A resolved run card for modality `M`: `[M::NAME]` holds the front end's configuration.
#[derive(Debug, Clone)]
pub struct RunCard<M: Modality> {
    pub core: CardCore,
    pub frontend: M::Config,
    _m: PhantomData<fn() -> M>,
}

impl<M: Modality> std::ops::Deref for RunCard<M> {
    type Target = CardCore;
    fn deref(&self) -> &CardCore {
        &self.core
    }
}

impl<M: Modality> std::ops::DerefMut for RunCard<M> {
    fn deref_mut(&mut self) -> &mut CardCore {
        &mut self.core
    }
}

impl<M: Modality> RunCard<M> {
    /// Parses a card from a TOML value; `what` names its origin in errors.
    pub fn from_value(mut value: toml::Value, what: &str) -> Result<Self> {
        let table = value
            .as_table_mut()
            .ok_or_else(|| anyhow::anyhow!("{what}: a model card is a TOML table"))?;
        let fe = table.remove(M::NAME).ok_or_else(|| {
            anyhow::anyhow!(
                "{what}: no [{}] table (this command reads `{}` cards)",
                M::NAME,
                M::NAME
            )
        })?;
        let frontend: M::Config = fe
            .try_into()
            .with_context(|| format!("{what}: invalid [{}] table", M::NAME))?;
        let core: CardCore = value
            .try_into()
            .with_context(|| format!("{what}: invalid model card"))?;
        Ok(Self {
            core,
            frontend,
            _m: PhantomData,
        })
    }

    /// The card of `--preset` (or `default`) with `--config` merged over it and the
    /// `--steps`, `--batch-size` and `--seed` flags applied.
    pub fn resolve(presets: &Presets, default: &str, common: &CommonArgs) -> Result<Self> {
        let value = presets.resolve(common.preset.as_deref(), default, common.config.as_deref())?;
        let what = common.preset.as_deref().unwrap_or(default);
        let what = match &common.config {
            Some(c) => format!("preset `{what}` with --config {}", c.display()),
            None => format!("preset `{what}`"),
        };
        let mut card = Self::from_value(value, &what)?;
        card.apply_flags(common);
        Ok(card)
    }

    /// Applies `--steps`, `--batch-size` and `--seed`.
    pub fn apply_flags(&mut self, common: &CommonArgs) {
        if let Some(s) = common.steps {
            self.core.train.steps = s;
        }
        if let Some(b) = common.batch_size {
            self.core.train.batch_size = b;
        }
        if let Some(s) = common.seed {
            self.core.seed = s;
        }
    }

    /// The card saved with a run's latest checkpoint.
    pub fn from_run(run: &Path) -> Result<Self> {
        let ck = latest_checkpoint(run)?.ok_or_else(|| {
            anyhow::anyhow!("{}: no checkpoint in this run folder", run.display())
        })?;
        let text = ck.config_toml()?;
        let value: toml::Value = toml::from_str(&text)
            .with_context(|| format!("{}: saved config is not TOML", ck.dir.display()))?;
        Self::from_value(value, &format!("{}", ck.dir.display()))
    }

    /// The card as a TOML table (what is saved with checkpoints).
    pub fn to_value(&self) -> Result<toml::Value> {
        let mut v = toml::Value::try_from(&self.core)?;
        if let Some(t) = v.as_table_mut() {
            t.insert(M::NAME.into(), toml::Value::try_from(&self.frontend)?);
        }
        Ok(v)
    }

    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string(&self.to_value()?)?)
    }

    /// The front end this card describes.
    pub fn modality(&self) -> Result<M> {
        M::new(&self.frontend).map_err(|e| anyhow::Error::new(e).context("invalid front end"))
    }

    /// The encoder configuration for `m`'s tokens.
    pub fn encoder_config(&self, m: &M) -> Result<EncoderConfig> {
        let spec = m.token_spec();
        Ok(self.core.encoder.resolve(spec.p, spec.scales())?)
    }
}
