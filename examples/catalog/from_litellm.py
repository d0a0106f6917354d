#!/usr/bin/env python3
"""Regenerates bedrock-on-demand.yaml from LiteLLM's price table.

The default Tally catalog is derived, not typed: this script reads
`model_prices_and_context_window_backup.json` from a LiteLLM wheel and writes
the Bedrock on-demand prices of the model families Tally ships prices for.

    pip download --no-deps litellm==1.110.2 -d /tmp/litellm
    unzip -o /tmp/litellm/litellm-*.whl 'litellm/model_prices_and_context_window_backup.json' -d /tmp/litellm
    python3 examples/catalog/from_litellm.py /tmp/litellm/litellm/model_prices_and_context_window_backup.json \
        --litellm-version 1.110.2 --date 2026-11-26 > examples/catalog/bedrock-on-demand.yaml
    cargo run -p tally-operator --bin tally -- render examples/catalog/ > /dev/null   # check it

Rules (kept in the file's header too):
- families: Anthropic Claude (current generations), Amazon Nova and Titan Text,
  Meta Llama 3.x/4, Mistral, DeepSeek; chat models only;
- a cross-region id (`us.`, `eu.`, `apac.`, `jp.`, `au.`, `us-gov.`) gets an entry
  only when its price differs from the base id's (otherwise the base entry prices
  it), `global.` ids always get one (explicit, equal to the base price);
- a region-specific price (LiteLLM key `bedrock/<region>/<id>`) that differs
  from the base gets an entry restricted to the regions with that price;
- prices per token are converted to USD per million tokens exactly (Decimal);
- token-priced entries of a base id (not a cross-region id) carry a `billing` block: the
  model part of the first-party CUR usage types (`USE1-<usageTypeModel>-input-tokens`) and,
  for models sold through the AWS Marketplace, the product name; derived by `billing()`
  below, with the exceptions in BILLING_NAMES. Ledger rows of a cross-region id meet the bill
  under their base id's name. Verify the names against your own CUR and override them in a
  ModelPricing of higher priority.
"""

import argparse
import json
import re
import sys
from collections import OrderedDict
from decimal import Decimal

FAMILIES = [
    ("Anthropic Claude", re.compile(r"^anthropic\.claude-(3-[57]-|3-opus|sonnet-|opus-|haiku-|fable-|mythos-)")),
    ("Amazon Nova", re.compile(r"^amazon\.nova-")),
    ("Amazon Titan Text", re.compile(r"^amazon\.titan-text-")),
    ("Meta Llama", re.compile(r"^meta\.llama(3|4)")),
    ("Mistral", re.compile(r"^mistral\.")),
    ("DeepSeek", re.compile(r"^deepseek\.")),
    ("Image generation", re.compile(r"^(stability\.|amazon\.titan-image-|amazon\.nova-canvas-)")),
]
PREFIXES = ["us-gov.", "global.", "apac.", "us.", "eu.", "jp.", "au.", "ca."]
REGION = re.compile(r"^[a-z]{2,}(-[a-z]+)+-[0-9]+$")
PRICE_KEYS = [
    ("inputPerMillion", "input_cost_per_token"),
    ("outputPerMillion", "output_cost_per_token"),
    ("cacheReadPerMillion", "cache_read_input_token_cost"),
    ("cacheWrite5mPerMillion", "cache_creation_input_token_cost"),
    ("cacheWrite1hPerMillion", "cache_creation_input_token_cost_above_1hr"),
]
# Long-context prices: LiteLLM's `<key>_above_200k_tokens`.
LONG_CONTEXT = 200_000
# Service tiers LiteLLM prices as `<key>_<tier>`.
TIERS = ["priority", "flex"]
# Prices LiteLLM does not carry, from the AWS Bedrock pricing page (checked 2026-11-26).
# Luma Ray2 costs 0.75 USD/s at 540p and 1.50 at 720p; a request may ask for either, so
# the catalog carries the dearer (a reservation must bound the call; override per resolution).
VIDEO = [
    ("amazon.nova-reel-v1:0", "0.08"),
    ("amazon.nova-reel-v1:1", "0.08"),
    ("luma.ray-v2:0", "1.5"),
]
# LiteLLM keys that are not Bedrock model ids.
EXCLUDE = {
    "anthropic.claude-3-7-sonnet-20240620-v1:0",  # Claude 3.7 Sonnet has no 2024-06-20 version
}
# Figures copied from LiteLLM that look wrong and were not verified against AWS.
UNSURE = {
    ("meta.llama3-8b-instruct-v1:0", "us-gov-east-1"): "unverified: output price and maxOutputTokens differ from us-gov-west-1",
}
# Billing names that the derivation in billing() does not produce: base id → usage-type model.
BILLING_NAMES = {
    "anthropic.claude-3-5-sonnet-20241022-v2:0": "Claude3.5SonnetV2",
    "anthropic.claude-mythos-preview": "ClaudeMythosPreview",
}
# Vendors whose models AWS bills through the Marketplace as "<name> (Amazon Bedrock Edition)".
MARKETPLACE_VENDORS = {"anthropic"}


def camel(words):
    """Capitalized words run together; a `-` keeps two numbers apart (`Ministral3-14B`)."""
    out = ""
    for w in (w for w in words if w):
        if out[-1:].isdigit() and w[:1].isdigit():
            out += "-"
        out += w[:1].upper() + w[1:]
    return out


def usage_type_model(base_id):
    """`anthropic.claude-sonnet-4-6` → `Claude4.6Sonnet`, `amazon.nova-pro-v1:0` → `NovaPro`,
    `meta.llama3-1-70b-instruct-v1:0` → `Llama3.1-70B`, `mistral.mixtral-8x7b-instruct-v0:1` → `Mixtral8x7B`."""
    if base_id in BILLING_NAMES:
        return BILLING_NAMES[base_id]
    vendor, name = base_id.split(".", 1)
    name = re.sub(r"(-v\d+(:\d+)?|-\d{8}(-v\d+:\d+)?)$", "", name)  # version and date suffixes
    name = re.sub(r"-\d{8}$", "", name)
    if vendor == "anthropic":
        m = re.match(r"^claude-(?:(\d+(?:-\d)?)-(sonnet|haiku|opus)|(sonnet|haiku|opus|fable|mythos)-(\d+(?:-\d)?))$", name)
        if m:
            version, family = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
            return "Claude" + version.replace("-", ".") + family.capitalize()
        return None
    if vendor == "meta":
        m = re.match(r"^llama(\d)(?:-(\d))?-(?:(maverick|scout)-)?(\d+b)", name)
        if m:
            version = m.group(1) + ("." + m.group(2) if m.group(2) else "")
            return "-".join(filter(None, ["Llama" + version, (m.group(3) or "").capitalize(), m.group(4).upper()]))
        return None
    if vendor == "deepseek":
        return "DeepSeek" + name.upper()
    words = re.sub(r"-instruct$", "", name).split("-")
    return camel(w.upper() if re.fullmatch(r"\d+b", w) else w for w in words)


def marketplace_product(base_id, model):
    """`Claude4.6Sonnet` → "Claude 4.6 Sonnet (Amazon Bedrock Edition)" for Marketplace vendors."""
    if base_id.split(".", 1)[0] not in MARKETPLACE_VENDORS or model is None:
        return None
    words = re.findall(r"\d+(?:\.\d+)?|V\d+|[A-Z][a-z]+", model)
    words = [w.lower() if re.fullmatch(r"V\d+", w) else w for w in words]
    return " ".join(words) + " (Amazon Bedrock Edition)"


def billing(item):
    """The billing block of a token-priced entry of a base id, else None."""
    if strip_prefix(item["match"])[0] or "perImage" in item or "perSecond" in item or "perTextUnit" in item:
        return None
    model = usage_type_model(item["match"])
    if model is None:
        return None
    out = OrderedDict(usageTypeModel=model)
    product = marketplace_product(item["match"], model)
    if product:
        out["marketplaceProduct"] = product
    return out


# LiteLLM gives some cross-region entries the context window as max_output_tokens;
# the reservation uses this number, so keep the base model's figure instead.
MAX_OUTPUT_SANITY = 131072


def per_million(cost):
    d = (Decimal(repr(cost)) * 1_000_000).normalize()
    text = format(d, "f")
    return text


def family_of(model_id):
    for name, pattern in FAMILIES:
        if pattern.search(model_id):
            return name
    return None


def strip_prefix(model_id):
    for p in PREFIXES:
        if model_id.startswith(p):
            return p, model_id[len(p):]
    return "", model_id


def token_prices(entry, suffix=""):
    out = OrderedDict()
    for key, src in PRICE_KEYS:
        if entry.get(src + suffix) is not None:
            out[key] = per_million(entry[src + suffix])
    return out if "inputPerMillion" in out and "outputPerMillion" in out else None


def prices(entry):
    if entry.get("mode") == "image_generation" and entry.get("output_cost_per_image"):
        return OrderedDict(
            inputPerMillion="0", outputPerMillion="0", perImage=format(Decimal(repr(entry["output_cost_per_image"])).normalize(), "f")
        )
    if entry.get("mode") != "chat" or entry.get("input_cost_per_token") is None:
        return None
    out = token_prices(entry)
    if out is None:
        return None
    if entry.get("max_input_tokens"):
        out["maxInputTokens"] = int(entry["max_input_tokens"])
    long = token_prices(entry, f"_above_{LONG_CONTEXT // 1000}k_tokens")
    if long:
        out["longContext"] = OrderedDict(aboveInputTokens=LONG_CONTEXT, **long)
    tiers = [OrderedDict(tier=t, **tp) for t in TIERS if (tp := token_prices(entry, "_" + t))]
    if tiers:
        out["serviceTiers"] = tiers
    return out


def max_output(entry, base_entry=None, notes=None):
    if entry.get("mode") == "image_generation":
        return 1
    n = entry.get("max_output_tokens") or entry.get("max_tokens")
    if base_entry is not None and (n is None or n > MAX_OUTPUT_SANITY):
        if notes is not None:
            notes.append(f"LiteLLM's max_output_tokens {n} is the context window; the base model's is used")
        n = base_entry.get("max_output_tokens") or n
    return int(n)


def missing_1h(p, base_p):
    """A note when the base model has a 1-hour cache-write price and this entry lacks one."""
    if base_p and "cacheWrite1hPerMillion" in base_p and "cacheWrite1hPerMillion" not in p:
        return "no 1-hour cache-write price in the source: 1-hour writes are charged at the 5-minute price"
    return None


def quoted_prices(item):
    return [f'{key}: "{item[key]}"' for key, _ in PRICE_KEYS if key in item]


def flow(item):
    parts = [f'match: "{item["match"]}"']
    if item.get("regions"):
        parts.append("regions: [" + ", ".join(item["regions"]) + "]")
    parts += quoted_prices(item)
    parts.append(f"maxOutputTokens: {item['maxOutputTokens']}")
    if "maxInputTokens" in item:
        parts.append(f"maxInputTokens: {item['maxInputTokens']}")
    if "longContext" in item:
        lc = item["longContext"]
        parts.append("longContext: {" + ", ".join([f"aboveInputTokens: {lc['aboveInputTokens']}"] + quoted_prices(lc)) + "}")
    if "serviceTiers" in item:
        tiers = ["{" + ", ".join([f"tier: {t['tier']}"] + quoted_prices(t)) + "}" for t in item["serviceTiers"]]
        parts.append("serviceTiers: [" + ", ".join(tiers) + "]")
    for key in ("perImage", "perSecond", "perTextUnit", "perRequest"):
        if key in item:
            parts.append(f'{key}: "{item[key]}"')
    b = billing(item)
    if b:
        fields = [f"usageTypeModel: {b['usageTypeModel']}"]
        if "marketplaceProduct" in b:
            fields.append(f'marketplaceProduct: "{b["marketplaceProduct"]}"')
        parts.append("billing: {" + ", ".join(fields) + "}")
    line = "  - {" + ", ".join(parts) + "}"
    notes = [n for n in item.get("notes", []) if n]
    return line + ("  # " + "; ".join(notes) if notes else "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json_path")
    ap.add_argument("--litellm-version", required=True)
    ap.add_argument("--date", required=True, help="YYYY-MM-DD the figures were taken")
    args = ap.parse_args()
    table = json.load(open(args.json_path))
    bedrock = {k: v for k, v in table.items() if v.get("litellm_provider") in ("bedrock", "bedrock_converse")}

    bases = {k: v for k, v in bedrock.items() if "/" not in k and "@" not in k and strip_prefix(k)[0] == ""}
    by_family = OrderedDict((name, []) for name, _ in FAMILIES)
    for model_id in sorted(bases):
        fam = family_of(model_id)
        p = prices(bases[model_id])
        if fam is None or p is None or model_id in EXCLUDE:
            continue
        by_family[fam].append(dict(match=model_id, **p, maxOutputTokens=max_output(bases[model_id])))

    # Cross-region profile ids.
    for model_id in sorted(k for k in bedrock if "/" not in k and "@" not in k):
        prefix, base_id = strip_prefix(model_id)
        fam = family_of(base_id)
        p = prices(bedrock[model_id])
        if not prefix or fam is None or p is None:
            continue
        base = bases.get(base_id)
        base_p = prices(base) if base else None
        notes = []
        mx = max_output(bedrock[model_id], base, notes)
        if prefix != "global." and base_p == p and base is not None and max_output(base) == mx:
            continue
        notes.append(missing_1h(p, base_p))
        by_family[fam].append(dict(match=model_id, **p, maxOutputTokens=mx, notes=notes))

    # Region-specific prices, grouped by identical price.
    regional = OrderedDict()
    for key in sorted(bedrock):
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != "bedrock" or not REGION.match(parts[1]):
            continue
        region, model_id = parts[1], parts[2]
        fam = family_of(model_id)
        p = prices(bedrock[key])
        base = bases.get(model_id)
        if fam is None or p is None or base is None or prices(base) == p:
            continue
        group = (fam, model_id, json.dumps(p), max_output(bedrock[key], base))
        regional.setdefault(group, []).append(region)
    for (fam, model_id, p, mx), regions in regional.items():
        p = json.loads(p, object_pairs_hook=OrderedDict)
        notes = [UNSURE.get((model_id, r)) for r in regions] + [missing_1h(p, prices(bases[model_id]))]
        by_family[fam].append(dict(match=model_id, regions=sorted(regions), **p, maxOutputTokens=mx, notes=notes))

    by_family["Video generation (AWS pricing page; StartAsyncInvoke, per second of video)"] = [
        dict(match=m, inputPerMillion="0", outputPerMillion="0", perSecond=price, maxOutputTokens=1) for m, price in VIDEO
    ]
    guardrail = table.get("bedrock/guardrails", {}).get("guardrail_cost_per_unit", {})
    if guardrail.get("contentPolicyUnits"):
        unit = format(Decimal(repr(guardrail["contentPolicyUnits"])).normalize(), "f")
        by_family["Guardrails (ApplyGuardrail, per text unit and policy)"] = [
            dict(match="guardrail/*", inputPerMillion="0", outputPerMillion="0", perTextUnit=unit, maxOutputTokens=1,
                 notes=["every policy unit at the content-filter price; sensitive-information and grounding units cost less"])
        ]
    w = sys.stdout.write
    w("# The default Tally price catalog: AWS Bedrock on-demand (standard tier) prices, USD per\n")
    w("# million tokens. Generated by examples/catalog/from_litellm.py; do not edit by hand, regenerate.\n")
    w("#\n")
    w(f"# Source: LiteLLM model_prices_and_context_window.json as shipped in litellm {args.litellm_version},\n")
    w(f"# taken {args.date}; LiteLLM transcribes the AWS Bedrock pricing page. Check a price against\n")
    w("# https://aws.amazon.com/bedrock/pricing/ before relying on it for chargeback; override any entry\n")
    w("# with a ModelPricing of higher priority instead of editing this one.\n")
    w("#\n")
    w("# Modelled where LiteLLM has them: context windows (maxInputTokens), long-context prices above\n")
    w("# 200k input tokens, the priority/flex service tiers, image models per image, guardrails per\n")
    w("# text unit; video models per second from the AWS pricing page. Not modelled: batch inference\n")
    w("# (~50% of on-demand), provisioned throughput. A cross-region id (us., eu., apac., jp., au., us-gov.) has an entry\n")
    w("# only where its price differs from the base id; otherwise Tally prices it as the base id.\n")
    w("# global. ids are listed explicitly at the base price. Missing 1-hour cache-write prices\n")
    w("# default to the 5-minute price. maxOutputTokens is LiteLLM's max_output_tokens (the base\n")
    w("# model's where LiteLLM gives a cross-region id its context window instead).\n")
    w("# billing: how the AWS bill (CUR) names a base model, for `tally reconcile`: the model part of\n")
    w("# its first-party usage types and, for Marketplace-billed models, the product name. Derived\n")
    w("# from the model id; verify against your CUR and override with a higher-priority ModelPricing.\n")
    w("apiVersion: tally.dev/v1alpha1\n")
    w("kind: ModelPricing\n")
    w("metadata:\n")
    w("  name: bedrock-on-demand\n")
    w("  labels:\n")
    w("    app.kubernetes.io/part-of: tally\n")
    w("spec:\n")
    w(f'  source: "AWS Bedrock on-demand pricing via LiteLLM model_prices_and_context_window {args.litellm_version}"\n')
    w(f'  effectiveFrom: "{args.date}"\n')
    w("  priority: 0\n")
    w("  models:\n")
    for fam, items in by_family.items():
        if not items:
            continue
        w(f"  # {fam}\n")
        for item in items:
            w(flow(item) + "\n")


if __name__ == "__main__":
    main()
