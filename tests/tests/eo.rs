//! The Earth-observation modality through the conformance suite.

tessera_conformance::conformance_suite!(eo, tessera_eo_cli::app(), "eo-nano-demo");
