//! Layered TOML configuration: an embedded preset, then a user file merged over it.

use anyhow::Context;
use std::path::Path;

/// The named model cards a domain embeds (name, TOML text).
pub struct Presets(pub &'static [(&'static str, &'static str)]);

impl Presets {
    /// Resolves `--preset` (a name, or a path to a TOML file) and `--config` into one TOML
    /// value: preset first, user file merged over it.
    pub fn resolve(
        &self,
        preset: Option<&str>,
        default: &str,
        config: Option<&Path>,
    ) -> anyhow::Result<toml::Value> {
        let name = preset.unwrap_or(default);
        let text = match self.0.iter().find(|(n, _)| *n == name) {
            Some((_, t)) => t.to_string(),
            None if Path::new(name).is_file() => {
                std::fs::read_to_string(name).with_context(|| format!("reading preset {name}"))?
            }
            None => {
                let known: Vec<&str> = self.0.iter().map(|p| p.0).collect();
                anyhow::bail!("unknown preset `{name}` (known: {})", known.join(", "))
            }
        };
        let mut value: toml::Value =
            toml::from_str(&text).with_context(|| format!("preset `{name}` is not valid TOML"))?;
        if let Some(path) = config {
            merge_file(&mut value, path)?;
        }
        Ok(value)
    }
}

/// Merges the TOML file at `path` over `base` (see [`deep_merge`]).
pub fn merge_file(base: &mut toml::Value, path: &Path) -> anyhow::Result<()> {
    let user =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let user: toml::Value =
        toml::from_str(&user).with_context(|| format!("{} is not valid TOML", path.display()))?;
    deep_merge(base, user);
    Ok(())
}

/// Merges `over` into `base`: tables recursively, everything else replaced.
pub fn deep_merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(bv) => deep_merge(bv, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_overrides_leaves_and_keeps_the_rest() {
        let mut a: toml::Value = toml::from_str("[x]\na = 1\nb = 2\n[y]\nc = 3").unwrap();
        let b: toml::Value = toml::from_str("[x]\nb = 5\n[z]\nd = 1").unwrap();
        deep_merge(&mut a, b);
        assert_eq!(a["x"]["a"].as_integer(), Some(1));
        assert_eq!(a["x"]["b"].as_integer(), Some(5));
        assert_eq!(a["y"]["c"].as_integer(), Some(3));
        assert_eq!(a["z"]["d"].as_integer(), Some(1));
    }

    #[test]
    fn unknown_preset_lists_known_ones() {
        let p = Presets(&[("a", "x = 1")]);
        let e = p.resolve(Some("nope"), "a", None).unwrap_err().to_string();
        assert!(e.contains("known: a"), "{e}");
        assert_eq!(
            p.resolve(None, "a", None).unwrap()["x"].as_integer(),
            Some(1)
        );
    }
}
