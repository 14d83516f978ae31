//! The sensor table: what each band of a known sensor physically is. Optical bands carry
//! their centre wavelength and bandwidth; radar bands carry their centre frequency and
//! polarisation, never a made-up wavelength. Users declare further bands in the card
//! (`[eo.bands.NAME]`).

use serde::{Deserialize, Serialize};

/// Polarisation of a radar channel (transmit, receive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pol {
    HH,
    HV,
    VH,
    VV,
}

impl Pol {
    pub fn parse(s: &str) -> Option<Pol> {
        match s.to_ascii_uppercase().as_str() {
            "HH" => Some(Pol::HH),
            "HV" => Some(Pol::HV),
            "VH" => Some(Pol::VH),
            "VV" => Some(Pol::VV),
            _ => None,
        }
    }

    /// The polarisation coordinate of a radar token: co-polarised channels at the ends,
    /// cross-polarised ones (physically alike by reciprocity) next to each other.
    pub fn code(self) -> f32 {
        match self {
            Pol::HH => 1.0,
            Pol::HV => 2.0,
            Pol::VH => 2.5,
            Pol::VV => 3.5,
        }
    }
}

/// What a band measures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Physics {
    /// Reflected or emitted light: centre wavelength and full bandwidth in nm.
    Optical {
        wavelength_nm: f64,
        bandwidth_nm: f64,
    },
    /// Radar backscatter: centre frequency in GHz and polarisation.
    Radar { frequency_ghz: f64, pol: Pol },
}

/// One band of a sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Band {
    /// `sensor.band`, the key of its normalisation statistics (`sentinel2.B04`).
    pub key: String,
    /// The band's name within its sensor (`B04`, `VV`).
    pub name: String,
    pub physics: Physics,
    /// Native ground sampling distance in m (0 when unknown).
    pub gsd_m: f64,
}

impl Band {
    pub fn is_radar(&self) -> bool {
        matches!(self.physics, Physics::Radar { .. })
    }

    /// The three spectral coordinates of this band's tokens: wavelength in µm (0 for radar),
    /// radar frequency in GHz (0 for optical), polarisation code (0 for optical).
    pub fn spectral_coords(&self) -> [f32; 3] {
        match self.physics {
            Physics::Optical { wavelength_nm, .. } => [(wavelength_nm / 1000.0) as f32, 0.0, 0.0],
            Physics::Radar { frequency_ghz, pol } => [0.0, frequency_ghz as f32, pol.code()],
        }
    }

    pub fn describe(&self) -> String {
        match self.physics {
            Physics::Optical {
                wavelength_nm,
                bandwidth_nm,
            } => format!("{} {wavelength_nm} nm (±{})", self.key, bandwidth_nm / 2.0),
            Physics::Radar { frequency_ghz, pol } => {
                format!("{} {frequency_ghz} GHz {pol:?}", self.key)
            }
        }
    }
}

/// A user-declared band (`[eo.bands.NAME]` in the card): either `wavelength_nm` (with an
/// optional `bandwidth_nm`) or `frequency_ghz` and `pol`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserBand {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wavelength_nm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_nm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_ghz: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pol: Option<String>,
    #[serde(default)]
    pub gsd_m: f64,
}

impl UserBand {
    pub fn band(&self, name: &str) -> Result<Band, String> {
        let physics = match (self.wavelength_nm, self.frequency_ghz) {
            (Some(w), None) if w > 0.0 && w.is_finite() => Physics::Optical {
                wavelength_nm: w,
                bandwidth_nm: self.bandwidth_nm.unwrap_or(0.0),
            },
            (None, Some(f)) if f > 0.0 && f.is_finite() => {
                let pol = self.pol.as_deref().and_then(Pol::parse).ok_or_else(|| {
                    format!("band `{name}`: a radar band needs pol = \"HH\", \"HV\", \"VH\" or \"VV\"")
                })?;
                Physics::Radar {
                    frequency_ghz: f,
                    pol,
                }
            }
            _ => {
                return Err(format!(
                "band `{name}`: give either a positive wavelength_nm (optical) or a positive frequency_ghz and pol (radar), not both"
            ))
            }
        };
        Ok(Band {
            key: format!("user.{name}"),
            name: name.into(),
            physics,
            gsd_m: self.gsd_m,
        })
    }
}

/// `(name, wavelength nm, bandwidth nm, gsd m)` of the Sentinel-2 MSI bands
/// (ESA Sentinel-2 User Handbook, S2A centre wavelengths).
pub const SENTINEL2: [(&str, f64, f64, f64); 13] = [
    ("B01", 442.7, 21.0, 60.0),
    ("B02", 492.4, 66.0, 10.0),
    ("B03", 559.8, 36.0, 10.0),
    ("B04", 664.6, 31.0, 10.0),
    ("B05", 704.1, 15.0, 20.0),
    ("B06", 740.5, 15.0, 20.0),
    ("B07", 782.8, 20.0, 20.0),
    ("B08", 832.8, 106.0, 10.0),
    ("B8A", 864.7, 21.0, 20.0),
    ("B09", 945.1, 20.0, 60.0),
    ("B10", 1373.5, 31.0, 60.0),
    ("B11", 1613.7, 91.0, 20.0),
    ("B12", 2202.4, 175.0, 20.0),
];

/// Landsat 8/9 OLI and TIRS bands (USGS): `(name, wavelength nm, bandwidth nm, gsd m)`.
pub const LANDSAT89: [(&str, f64, f64, f64); 11] = [
    ("B1", 443.0, 20.0, 30.0),
    ("B2", 482.0, 60.0, 30.0),
    ("B3", 561.5, 57.0, 30.0),
    ("B4", 654.5, 37.0, 30.0),
    ("B5", 865.0, 28.0, 30.0),
    ("B6", 1608.5, 85.0, 30.0),
    ("B7", 2200.5, 187.0, 30.0),
    ("B8", 589.5, 173.0, 15.0),
    ("B9", 1373.5, 21.0, 30.0),
    ("B10", 10895.0, 590.0, 100.0),
    ("B11", 12005.0, 1010.0, 100.0),
];

/// Sentinel-1 C-band centre frequency (GHz).
pub const SENTINEL1_GHZ: f64 = 5.405;
/// MSTAR's X-band radar centre frequency (GHz) and resolution (m).
pub const MSTAR_GHZ: f64 = 9.6;
pub const MSTAR_GSD_M: f64 = 0.3;

/// The known sensors (`[eo] sensor`).
pub const SENSORS: [&str; 6] = ["sentinel2", "landsat", "sentinel1", "mstar", "rgb", "user"];

/// The band order a sensor's files hold when they say nothing else, by band count
/// (Sentinel-2 12-band L2A products leave out B10).
pub fn default_bands(sensor: &str, count: usize) -> Option<Vec<&'static str>> {
    let s2: Vec<&str> = SENTINEL2.iter().map(|b| b.0).collect();
    Some(match (sensor, count) {
        ("sentinel2", 13) => s2,
        ("sentinel2", 12) => s2.into_iter().filter(|b| *b != "B10").collect(),
        ("sentinel2", 10) => vec![
            "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
        ],
        ("sentinel2", 4) => vec!["B02", "B03", "B04", "B08"],
        ("sentinel2", 3) => vec!["B04", "B03", "B02"],
        ("landsat", 7) => vec!["B1", "B2", "B3", "B4", "B5", "B6", "B7"],
        ("landsat", 11) => LANDSAT89.iter().map(|b| b.0).collect(),
        ("sentinel1", 1) => vec!["VV"],
        ("sentinel1", 2) => vec!["VV", "VH"],
        ("mstar", 1) => vec!["HH"],
        ("rgb", 3) => vec!["R", "G", "B"],
        ("rgb", 4) => vec!["R", "G", "B", "NIR"],
        _ => return None,
    })
}

/// Band names as files spell them, normalised: `B4`, `b04`, `B04_10m`, `SR_B4` → `B04`
/// for Sentinel-2; `vv`, `Sigma0_VV` → `VV`.
pub fn normalise_name(sensor: &str, raw: &str) -> String {
    let s = raw.trim().to_ascii_uppercase();
    let s = s
        .rsplit(['_', ' ', '-'])
        .find(|p| {
            !p.is_empty()
                && (!p.ends_with('M') || !p[..p.len() - 1].chars().all(|c| c.is_ascii_digit()))
        })
        .unwrap_or(&s)
        .to_string();
    if sensor == "sentinel2" {
        if let Some(rest) = s.strip_prefix('B') {
            if rest == "8A" {
                return "B8A".into();
            }
            if let Ok(n) = rest.parse::<u32>() {
                return format!("B{n:02}");
            }
        }
    }
    if sensor == "landsat" {
        if let Some(rest) = s.strip_prefix('B') {
            if let Ok(n) = rest.parse::<u32>() {
                return format!("B{n}");
            }
        }
    }
    s
}

/// The band `name` of `sensor` (after [`normalise_name`]); `None` if the table lacks it.
pub fn lookup(sensor: &str, name: &str) -> Option<Band> {
    let n = normalise_name(sensor, name);
    let optical = |n: &str, w: f64, bw: f64, g: f64| Band {
        key: format!("{sensor}.{n}"),
        name: n.into(),
        physics: Physics::Optical {
            wavelength_nm: w,
            bandwidth_nm: bw,
        },
        gsd_m: g,
    };
    let radar = |ghz: f64, g: f64| {
        Pol::parse(&n).map(|pol| Band {
            key: format!("{sensor}.{n}"),
            name: n.clone(),
            physics: Physics::Radar {
                frequency_ghz: ghz,
                pol,
            },
            gsd_m: g,
        })
    };
    match sensor {
        "sentinel2" => SENTINEL2
            .iter()
            .find(|b| b.0 == n)
            .map(|b| optical(b.0, b.1, b.2, b.3)),
        "landsat" => LANDSAT89
            .iter()
            .find(|b| b.0 == n)
            .map(|b| optical(b.0, b.1, b.2, b.3)),
        "sentinel1" => radar(SENTINEL1_GHZ, 10.0),
        "mstar" => radar(MSTAR_GHZ, MSTAR_GSD_M),
        "rgb" => match n.as_str() {
            "R" | "RED" => Some(optical("R", 650.0, 60.0, 0.0)),
            "G" | "GREEN" => Some(optical("G", 550.0, 60.0, 0.0)),
            "B" | "BLUE" => Some(optical("B", 470.0, 60.0, 0.0)),
            "NIR" => Some(optical("NIR", 850.0, 100.0, 0.0)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise() {
        assert_eq!(normalise_name("sentinel2", "B4"), "B04");
        assert_eq!(normalise_name("sentinel2", "b8a"), "B8A");
        assert_eq!(
            normalise_name("sentinel2", "T32TQM_20200101_B04_10m"),
            "B04"
        );
        assert_eq!(normalise_name("sentinel1", "Sigma0_VV"), "VV");
        assert_eq!(normalise_name("landsat", "SR_B04"), "B4");
        assert!(lookup("sentinel1", "VH").unwrap().is_radar());
        assert_eq!(
            lookup("sentinel2", "B12").unwrap().spectral_coords()[0],
            2.2024
        );
        assert!(lookup("sentinel2", "VV").is_none());
        for s in ["sentinel2", "landsat", "sentinel1", "mstar", "rgb"] {
            for n in 1..14 {
                for b in default_bands(s, n).unwrap_or_default() {
                    assert!(lookup(s, b).is_some(), "{s} {b}");
                }
            }
        }
    }
}
