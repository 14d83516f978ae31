//! The medical modality through the conformance suite.

tessera_conformance::conformance_suite!(medical, tessera_medical_cli::app(), "medical-nano-demo");
