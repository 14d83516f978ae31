//! Document images: pages from scans (PNG, JPEG, multi-page and fax TIFF; `page`) and PDFs
//! (rendered by Poppler; `pdf`), brought to one working resolution by the dpi they declare
//! (`resample`), then 2-D patches of the whole page with (x mm, y mm) coordinates and box
//! pooling (`frontend`); its `Modality` impl and generated demo pages (`synth`).
//! Candle-free; the `tessera-doc` binary lives in `domains/doc/cli`.

pub mod deskew;
pub mod error;
pub mod frontend;
pub mod modality;
pub mod page;
pub mod pdf;
pub mod resample;
pub mod synth;

pub use error::DocError;
pub use frontend::{DocConfig, DocFrontend, DocSample};
