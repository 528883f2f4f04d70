//! The poisoned-lock policy, one for the workspace ([`nines_common::util::sync`]): a lock whose
//! holder panicked is used anyway, with a logged warning.

pub use nines_common::util::sync::{lock, read, write};
