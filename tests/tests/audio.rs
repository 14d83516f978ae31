//! The audio modality through the conformance suite.

tessera_conformance::conformance_suite!(audio, tessera_audio_cli::app(), "audio-nano-demo");
