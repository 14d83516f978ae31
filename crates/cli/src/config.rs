//! Layered TOML configuration: an embedded preset (which may `extends = "another"`), then a
//! user file merged over it.

use anyhow::Context;
use std::path::Path;

/// The named model cards a domain embeds (name, TOML text).
pub struct Presets(pub &'static [(&'static str, &'static str)]);

impl Presets {
    /// Resolves `--preset` (a name, or a path to a TOML file) and `--config` into one TOML
    /// value: preset first (with its `extends` chain), user file merged over it.
    pub fn resolve(
        &self,
        preset: Option<&str>,
        default: &str,
        config: Option<&Path>,
    ) -> anyhow::Result<toml::Value> {
        let mut value = self.load(preset.unwrap_or(default), &mut Vec::new())?;
        if let Some(path) = config {
            merge_file(&mut value, path)?;
        }
        Ok(value)
    }

    /// Names of the embedded presets.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|p| p.0).collect()
    }

    /// One preset with its `extends` chain merged in (the parent first, then this card).
    /// A card may extend an embedded preset by name or another file by path (relative to
    /// the card's folder).
    fn load(&self, name: &str, chain: &mut Vec<String>) -> anyhow::Result<toml::Value> {
        if chain.iter().any(|c| c == name) || chain.len() > 16 {
            chain.push(name.to_string());
            anyhow::bail!("preset `extends` cycle: {}", chain.join(" -> "));
        }
        chain.push(name.to_string());
        let (text, dir) = match self.0.iter().find(|(n, _)| *n == name) {
            Some((_, t)) => (t.to_string(), None),
            None if Path::new(name).is_file() => (
                std::fs::read_to_string(name).with_context(|| format!("reading preset {name}"))?,
                Path::new(name).parent().map(Path::to_path_buf),
            ),
            None => anyhow::bail!(
                "unknown preset `{name}` (known: {})",
                self.names().join(", ")
            ),
        };
        let mut value: toml::Value =
            toml::from_str(&text).with_context(|| format!("preset `{name}` is not valid TOML"))?;
        let parent = match value.as_table_mut().and_then(|t| t.remove("extends")) {
            None => return Ok(value),
            Some(toml::Value::String(p)) => p,
            Some(other) => {
                anyhow::bail!("preset `{name}`: `extends` must be a preset name, found {other}")
            }
        };
        let parent = match &dir {
            Some(d) if !self.0.iter().any(|(n, _)| *n == parent) && d.join(&parent).is_file() => {
                d.join(&parent).display().to_string()
            }
            _ => parent,
        };
        let mut base = self
            .load(&parent, chain)
            .with_context(|| format!("preset `{name}` extends `{parent}`"))?;
        deep_merge(&mut base, value);
        Ok(base)
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

/// Merges `over` into `base`: tables recursively, everything else replaced. A table whose
/// `kind` differs from the base's (another recipe, another intensity normalisation)
/// replaces the base table whole, so no field of the old kind leaks into the new one.
pub fn deep_merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o))
            if o.get("kind").is_some_and(|k| b.get("kind") != Some(k)) =>
        {
            *b = o;
        }
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
    fn a_new_kind_replaces_the_whole_table() {
        let mut a: toml::Value = toml::from_str(
            "[recipe]\nkind = \"mae\"\ndecoder_dim = 128\n[recipe.mask]\nratio = 0.75",
        )
        .unwrap();
        let b: toml::Value =
            toml::from_str("[recipe]\nkind = \"volume_fusion\"\nboxes = [1, 2]").unwrap();
        deep_merge(&mut a, b);
        assert_eq!(a["recipe"]["kind"].as_str(), Some("volume_fusion"));
        assert!(a["recipe"].get("decoder_dim").is_none() && a["recipe"].get("mask").is_none());
        // Same kind: merged field by field.
        let c: toml::Value =
            toml::from_str("[recipe]\nkind = \"volume_fusion\"\nalpha = 1").unwrap();
        deep_merge(&mut a, c);
        assert!(a["recipe"].get("boxes").is_some() && a["recipe"].get("alpha").is_some());
    }

    #[test]
    fn presets_extend_presets_and_cycles_are_errors() {
        let p = Presets(&[
            (
                "base",
                "name = \"base\"\nseed = 1\n[train]\nsteps = 10\nlr = 0.1",
            ),
            (
                "child",
                "extends = \"base\"\nname = \"child\"\n[train]\nsteps = 20",
            ),
            ("loop1", "extends = \"loop2\""),
            ("loop2", "extends = \"loop1\""),
            ("orphan", "extends = \"nope\""),
        ]);
        let v = p.resolve(Some("child"), "base", None).unwrap();
        assert_eq!(v["name"].as_str(), Some("child"));
        assert_eq!(v["seed"].as_integer(), Some(1));
        assert_eq!(v["train"]["steps"].as_integer(), Some(20));
        assert_eq!(v["train"]["lr"].as_float(), Some(0.1));
        assert!(v.get("extends").is_none());
        let e = format!("{:#}", p.resolve(Some("loop1"), "base", None).unwrap_err());
        assert!(
            e.contains("cycle") && e.contains("loop1 -> loop2 -> loop1"),
            "{e}"
        );
        let e = format!("{:#}", p.resolve(Some("orphan"), "base", None).unwrap_err());
        assert!(e.contains("unknown preset `nope`"), "{e}");
        // A file preset extends an embedded one.
        let d = std::env::temp_dir().join(format!("tessera-presets-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("mine.toml");
        std::fs::write(&f, "extends = \"child\"\nseed = 7\n").unwrap();
        let v = p.resolve(Some(f.to_str().unwrap()), "base", None).unwrap();
        assert_eq!(
            (v["seed"].as_integer(), v["train"]["steps"].as_integer()),
            (Some(7), Some(20))
        );
        let _ = std::fs::remove_dir_all(&d);
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
