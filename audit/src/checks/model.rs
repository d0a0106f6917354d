//! Model ids that say which model was billed, and regions that say where.
//! An application-inference-profile ARN is opaque until mapped to a model; a
//! cross-region profile's `inferenceRegion` is where it ran, not where it was
//! billed (the endpoint's region).

use crate::field::Field;
use crate::fix::Fix;
use crate::formats::Sample;
use crate::lookup;
use crate::observation::Observation;
use crate::report::Finding;

use super::Context;

const APP_PROFILE: &str = ":application-inference-profile/";

/// The model id to price: provider prefixes (`bedrock/`, `bedrock/converse/`) dropped.
pub fn model_key(model: &str) -> &str {
    if model.starts_with("arn:") {
        return model;
    }
    model.rsplit('/').next().unwrap_or(model)
}

/// Application-inference-profile ARNs that nothing resolves to a model.
pub fn profiles(sample: &Sample, ctx: &Context) -> Option<Finding> {
    let unresolved: Vec<&Observation> = sample
        .observations
        .iter()
        .filter(|o| {
            let Some(model) = o.text(Field::ModelId) else {
                return false;
            };
            let resolved_by_catalog = ctx.book.as_ref().is_some_and(|b| b.alias(&model) != model);
            model.contains(APP_PROFILE) && o.call.resolved_model.is_none() && !resolved_by_catalog
        })
        .collect();
    let o = unresolved.first()?;
    let mut arns: Vec<String> = unresolved.iter().filter_map(|o| o.text(Field::ModelId)).collect();
    arns.sort();
    arns.dedup();
    Some(Finding {
        fix: Fix::ProfileAliases,
        text: format!(
            "application-inference-profile ARN never resolved to a model on {} record(s) ({} profile(s), e.g. record {}: {}): calls cannot be priced or compared by model",
            unresolved.len(),
            arns.len(),
            o.record,
            arns[0]
        ),
    })
}

/// A region that is a cross-region profile's inference region, not the billing region.
pub fn region(sample: &Sample) -> Option<Finding> {
    let wrong: Vec<&Observation> = sample.observations.iter().filter(|o| inference_as_billing(o)).collect();
    let o = wrong.first()?;
    let region = o.text(Field::Region).unwrap_or_default();
    let billing = o
        .call
        .endpoint_region
        .clone()
        .unwrap_or_else(|| "the endpoint's region".into());
    Some(Finding {
        fix: Fix::BillingRegion,
        text: format!(
            "the inference region is used as the billing region on {} record(s): e.g. record {}: `{}` = {region}, but {} was called at {billing} (a cross-region profile is billed in the source region)",
            wrong.len(),
            o.record,
            o.get(Field::Region).map_or("", |f| f.key.as_str()),
            o.text(Field::ModelId).unwrap_or_else(|| "the model".into()),
        ),
    })
}

fn inference_as_billing(o: &Observation) -> bool {
    let Some(found) = o.get(Field::Region) else {
        return false;
    };
    if lookup::normalize(&found.key).contains("inference") {
        return true;
    }
    let region = lookup::text(&found.value);
    let profile = o.text(Field::ModelId).is_some_and(|m| {
        tally_config::pricing::strip_geo_prefix(model_key(&m)).is_some() || m.contains(":inference-profile/")
    });
    match &o.call.endpoint_region {
        Some(endpoint) if *endpoint != region => o.call.inference_region.as_deref() == Some(region.as_str()) || profile,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::detect::Format;
    use crate::observation::Found;

    fn sample(obs: Vec<Observation>) -> Sample {
        Sample {
            name: "s".into(),
            format: Format::AppLog,
            profile: Format::AppLog.profile(),
            observations: obs,
            skipped: 0,
        }
    }

    fn call(model: &str, region_key: &str, region: &str, endpoint: Option<&str>) -> Observation {
        let mut o = Observation::new(1);
        o.set(Field::ModelId, Some(Found::new("model", json!(model))));
        o.set(Field::Region, Some(Found::new(region_key, json!(region))));
        o.call.endpoint_region = endpoint.map(str::to_string);
        o
    }

    #[test]
    fn the_inference_region_is_not_the_billing_region() {
        let geo = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
        assert!(region(&sample(vec![call(geo, "region", "us-west-2", Some("us-east-1"))])).is_some());
        assert!(region(&sample(vec![call(geo, "inference_region", "us-west-2", None)])).is_some());
        assert!(region(&sample(vec![call(geo, "region", "us-east-1", Some("us-east-1"))])).is_none());
        assert!(
            region(&sample(vec![call(
                "amazon.nova-lite-v1:0",
                "region",
                "eu-west-1",
                None
            )]))
            .is_none()
        );
    }

    #[test]
    fn unmapped_application_profiles_are_misscoped() {
        let arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/zz9";
        let f = profiles(
            &sample(vec![call(arn, "region", "us-east-1", None)]),
            &Context::default(),
        )
        .unwrap();
        assert_eq!(f.fix, Fix::ProfileAliases);
        let mut resolved = call(arn, "region", "us-east-1", None);
        resolved.call.resolved_model = Some("amazon.nova-lite-v1:0".into());
        assert!(profiles(&sample(vec![resolved]), &Context::default()).is_none());
        assert_eq!(
            model_key("bedrock/converse/us.amazon.nova-lite-v1:0"),
            "us.amazon.nova-lite-v1:0"
        );
    }
}
