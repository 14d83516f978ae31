//! The EEG modality through the conformance suite.

tessera_conformance::conformance_suite!(eeg, tessera_eeg_cli::app(), "eeg-nano-demo");
