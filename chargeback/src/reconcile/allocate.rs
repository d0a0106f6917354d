//! The invoice, split by team: each bill cell's actual cost shared among the ledger's users of
//! that cell (team, tenant, workflow) in proportion to their tokens of the cell's class.
//! Largest remainder at the nano-USD, so the shares of a cell add up to its cost exactly and
//! the split adds up to the bill's Bedrock usage cost exactly. Cost nobody in the ledger used
//! — cells without ledger tokens, usage that is not tokens — goes to an explicit
//! `unattributed` row.

use std::collections::{BTreeMap, HashMap};

use tally_config::money::Nanos;

use super::usage::{LedgerUsage, Slot, User, class_index};
use crate::cur::{Bill, BillCell, CellKey};

/// One user's part of the bill, and what the ledger charged them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub team: String,
    pub tenant: String,
    pub workflow: String,
    /// Their part of the bill's usage cost.
    pub billed: Nanos,
    /// What Tally charged them (the ledger's cost) over the period.
    pub charged: Nanos,
}

/// The team name of the row holding cost no ledger user can be given.
pub const UNATTRIBUTED: &str = "unattributed";

/// The split invoice: one share per ledger user (by team, tenant, workflow), then the
/// `unattributed` row. Its `billed` column sums to [`Bill::usage_cost`].
pub fn allocate(bill: &Bill, ledger: &LedgerUsage) -> Vec<Share> {
    let mut by_slot: HashMap<Slot, Vec<(User, [u64; 4])>> = HashMap::new();
    for ((slot, user), tokens) in &ledger.weights {
        by_slot.entry(*slot).or_default().push((*user, *tokens));
    }
    for users in by_slot.values_mut() {
        users.sort_unstable_by_key(|(u, _)| *u);
    }
    let mut billed: HashMap<User, i64> = HashMap::new();
    let mut unattributed = Nanos::ZERO;
    for (key, cell) in bill.cells.iter().chain(&bill.unmapped) {
        let users = slot_of(key, ledger).and_then(|s| by_slot.get(&s));
        match users.filter(|u| u.iter().any(|(_, t)| t[class_index(key.class)] > 0)) {
            Some(users) => share_cell(cell, class_index(key.class), users, &mut billed),
            None => unattributed = unattributed.saturating_add(cell.cost),
        }
    }
    for other in bill.other_usage.values() {
        unattributed = unattributed.saturating_add(other.cost);
    }
    let mut rows: BTreeMap<(&str, &str, &str), Share> = BTreeMap::new();
    for (user, (team, tenant, workflow)) in ledger.users.iter().enumerate() {
        let user = User::try_from(user).unwrap_or(User::MAX);
        let b = billed.get(&user).copied().unwrap_or(0);
        let c = ledger.charged.get(&user).copied().unwrap_or(0);
        rows.insert(
            (team, tenant, workflow),
            Share {
                team: team.clone(),
                tenant: tenant.clone(),
                workflow: workflow.clone(),
                billed: Nanos(b),
                charged: Nanos(c),
            },
        );
    }
    let mut out: Vec<Share> = rows.into_values().collect();
    out.push(Share {
        team: UNATTRIBUTED.into(),
        tenant: String::new(),
        workflow: String::new(),
        billed: unattributed,
        charged: Nanos::ZERO,
    });
    out
}

/// The ledger slot of a bill cell, if the ledger has names for all its parts.
fn slot_of(key: &CellKey, ledger: &LedgerUsage) -> Option<Slot> {
    Some(Slot {
        day: super::day_number(key.day),
        region: ledger.names.get(&key.region)?,
        model: ledger.names.get(&key.model)?,
        tier: ledger.names.get(&key.tier)?,
    })
}

fn share_cell(cell: &BillCell, class: usize, users: &[(User, [u64; 4])], billed: &mut HashMap<User, i64>) {
    let weights: Vec<u64> = users.iter().map(|(_, t)| t[class]).collect();
    for ((user, _), part) in users.iter().zip(split(cell.cost.0, &weights)) {
        let b = billed.entry(*user).or_default();
        *b = b.saturating_add(part);
    }
}

/// `total` split in proportion to `weights` by largest remainder: the parts add up to
/// `total` exactly; the nano-USD left by rounding down go to the largest remainders (the
/// first weight on a tie). A negative total (a usage correction) is split as its magnitude.
pub fn split(total: i64, weights: &[u64]) -> Vec<i64> {
    let sum: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let magnitude = u128::from(total.unsigned_abs());
    let mut parts: Vec<u128> = weights.iter().map(|w| magnitude * u128::from(*w) / sum).collect();
    let given: u128 = parts.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Stable sort: equal remainders keep the weights' order.
    order.sort_by_key(|i| std::cmp::Reverse(magnitude * u128::from(weights[*i]) % sum));
    for i in order
        .into_iter()
        .take(usize::try_from(magnitude - given).unwrap_or(usize::MAX))
    {
        parts[i] += 1;
    }
    let sign = if total < 0 { -1 } else { 1 };
    parts
        .into_iter()
        .map(|p| sign * i64::try_from(p).unwrap_or(i64::MAX))
        .collect()
}
