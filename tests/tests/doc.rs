//! The document modality through the conformance suite.

tessera_conformance::conformance_suite!(doc, tessera_doc_cli::app(), "doc-nano-demo");
