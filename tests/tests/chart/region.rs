//! The standalone gateway forwards every call to one Bedrock endpoint: the ext_proc prices
//! calls in that endpoint's region (`--upstream-region`), never in the region a client's
//! `Host` names. In a mesh the call goes where its host says, so the flag is not set.

use crate::render::{arg, documents, pod_spec, render};

#[test]
fn the_gateway_prices_calls_in_the_region_it_forwards_to() {
    let docs = documents(&render(None, &["gateway.region=eu-central-1"]));
    let c = &pod_spec(&docs, "Deployment", "tally-extproc")["containers"][0];
    assert_eq!(arg(c, "--upstream-region"), Some("eu-central-1"));

    let mesh = documents(&render(None, &["gateway.mode=istio"]));
    let c = &pod_spec(&mesh, "Deployment", "tally-extproc")["containers"][0];
    assert_eq!(arg(c, "--upstream-region"), None);
}
