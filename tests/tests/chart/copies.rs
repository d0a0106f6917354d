//! The chart's copies of the generated CRDs (`crds/`) and of the price catalog
//! (`examples/catalog/`): byte-for-byte the sources, and the catalog rendered as shipped.

use std::collections::BTreeSet;
use std::path::Path;

use tally_tests::fixtures::tools::workspace_root;

use crate::render::{documents, id, kind, render, text};

#[test]
fn crds_and_price_catalog_in_the_chart_are_copies_of_the_sources() {
    let root = workspace_root();
    let yaml_files = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let sources = yaml_files(&root.join("crds"));
    assert!(
        !sources.is_empty(),
        "no CRDs in crds/: generate them with `cargo run -p tally-operator -- crds`"
    );
    let copies = yaml_files(&root.join("charts/tally/crds"));
    let fix = "run `rm -f charts/tally/crds/*.yaml && cp crds/*.yaml charts/tally/crds/`";
    assert_eq!(
        copies, sources,
        "charts/tally/crds/ holds other files than crds/: {fix}"
    );
    for file in &sources {
        let source = std::fs::read(root.join("crds").join(file)).expect("read CRD");
        let copy = std::fs::read(root.join("charts/tally/crds").join(file)).expect("read CRD copy");
        assert!(
            source == copy,
            "charts/tally/crds/{file} differs from crds/{file}: {fix}"
        );
    }

    let catalog = root.join("examples/catalog/bedrock-on-demand.yaml");
    let source = std::fs::read(&catalog).unwrap_or_else(|e| panic!("{}: {e}", catalog.display()));
    let copy = std::fs::read(root.join("charts/tally/files/bedrock-on-demand.yaml")).unwrap_or_default();
    assert!(
        source == copy,
        "charts/tally/files/bedrock-on-demand.yaml differs from examples/catalog/bedrock-on-demand.yaml: \
         run `cp examples/catalog/bedrock-on-demand.yaml charts/tally/files/`"
    );
    // And the chart ships it (catalog.install, default true) unchanged.
    let rendered = documents(&render(None, &[]));
    let catalog_docs = documents(&text(&source));
    for doc in &catalog_docs {
        assert!(
            rendered.contains(doc),
            "the chart does not render {} from the catalog",
            id(doc)
        );
    }
    let without = documents(&render(None, &["catalog.install=false"]));
    assert!(
        !without.iter().any(|d| kind(d) == "ModelPricing"),
        "catalog.install=false still renders a ModelPricing"
    );
}
