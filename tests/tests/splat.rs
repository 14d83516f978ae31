//! The splat modality through the conformance suite.

tessera_conformance::conformance_suite!(splat, tessera_splat_cli::app(), "splat-nano-demo");
