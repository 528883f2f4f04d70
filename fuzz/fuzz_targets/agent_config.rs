//! The agent's configuration parser on arbitrary text. Beyond "does not panic": every refusal
//! names the file, as a user needs to find it, and an accepted configuration is accepted again
//! unchanged (parsing is a pure function of the text).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nines_agent::config::Config;

const PATH: &str = "/etc/nines/agent.toml";

fuzz_target!(|text: &str| {
    match Config::parse(text, Path::new(PATH)) {
        Ok(config) => {
            let again = Config::parse(text, Path::new(PATH)).expect("accepted twice");
            assert_eq!(config, again);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(PATH), "error without the file: {msg}");
        }
    }
});
