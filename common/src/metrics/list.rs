//! The registry's entries, in the order of docs/metrics.md: one file per family of metrics
//! (`machine`, `devices`, `process`, `agent`, and the aggregator's `derived`), one constant
//! per section of the doc, put in the doc's order here. Edit the family's file, then
//! regenerate the doc tables (see `metrics_doc_tables_are_generated_from_the_registry`).

mod agent;
mod derived;
mod devices;
mod machine;
mod process;

use super::Metric;

pub use derived::DERIVED;

/// The sections' entries, in the order of [`super::Section::ALL`].
const SECTIONS: &[&[Metric]] = &[
    machine::CPU,
    machine::MEMORY,
    machine::SWAP,
    devices::DISK,
    devices::FILESYSTEM,
    devices::NETWORK,
    process::PROCESS,
    machine::HOST,
    agent::AGENT,
    agent::CHECKS,
    agent::BUSINESS,
];

/// Every metric the agent sends, in the order of docs/metrics.md.
pub const METRICS: &[Metric] = &ALL;

const ALL: [Metric; count(SECTIONS)] = concat(SECTIONS);

/// How many entries the parts hold together.
const fn count(parts: &[&[Metric]]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < parts.len() {
        n += parts[i].len();
        i += 1;
    }
    n
}

/// The parts one after the other. `N` must be their [`count`]; evaluated at compile time, so a
/// wrong `N` fails the build.
const fn concat<const N: usize>(parts: &[&[Metric]]) -> [Metric; N] {
    // Every slot is overwritten below; the first entry only fills the array meanwhile.
    let mut all = [parts[0][0]; N];
    let mut k = 0;
    let mut i = 0;
    while i < parts.len() {
        let mut j = 0;
        while j < parts[i].len() {
            all[k] = parts[i][j];
            k += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(k == N, "N is not the parts' count");
    all
}

#[cfg(test)]
mod tests {
    use super::super::Section;
    use super::*;

    #[test]
    fn each_part_is_one_section_in_the_order_of_the_doc() {
        assert_eq!(SECTIONS.len(), Section::ALL.len());
        for (part, section) in SECTIONS.iter().zip(Section::ALL) {
            assert!(!part.is_empty(), "{section:?} has no metrics");
            for m in *part {
                assert_eq!(m.section, section, "{} is listed under {section:?}", m.name);
            }
        }
        assert_eq!(
            METRICS.len(),
            SECTIONS.iter().map(|p| p.len()).sum::<usize>()
        );
    }
}
