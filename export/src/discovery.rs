//! Finding every team's ledger stream: `SCAN … MATCH tally:{*}:ledger TYPE stream` over the
//! whole keyspace — one node, or each primary of a Redis Cluster in turn (a cluster's SCAN
//! cursor belongs to one node, so each primary is walked with its own). Teams removed from the
//! config are found too: their streams still hold records to export.

use redis::Value;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use tally_store::redis::Connection;

use crate::{Error, Result};

const KEY_PREFIX: &str = "tally:{";
const KEY_SUFFIX: &str = "}:ledger";

/// The teams with a ledger stream, sorted.
pub async fn teams(conn: &Connection) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    match conn {
        Connection::Single(_) => {
            let mut cursor = 0u64;
            loop {
                let (next, page): (u64, Vec<String>) = scan(cursor).query_async(&mut conn.clone()).await?;
                keys.extend(page);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Connection::Cluster(cluster) => keys = scan_cluster(cluster.clone()).await?,
    }
    let mut teams: Vec<String> = keys.iter().filter_map(|k| team_of(k)).collect();
    teams.sort();
    teams.dedup();
    Ok(teams)
}

/// The team of a ledger stream key `tally:{team}:ledger`.
pub fn team_of(key: &str) -> Option<String> {
    key.strip_prefix(KEY_PREFIX)?
        .strip_suffix(KEY_SUFFIX)
        .map(str::to_string)
}

fn scan(cursor: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(format!("{KEY_PREFIX}*{KEY_SUFFIX}"))
        .arg("COUNT")
        .arg(1000)
        .arg("TYPE")
        .arg("stream");
    cmd
}

/// The first page from every primary at once (the reply names each node), then each node's
/// remaining pages from that node.
async fn scan_cluster(mut conn: ClusterConnection) -> Result<Vec<String>> {
    let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
    let first = conn.route_command(scan(0), all).await?;
    let Value::Map(by_node) = first else {
        return Err(Error::Protocol(format!("SCAN on every primary: {first:?}")));
    };
    let mut keys = Vec::new();
    for (node, reply) in by_node {
        let node: String = redis::from_redis_value(node).map_err(parse)?;
        let (host, port) = node
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| Error::Protocol(format!("cluster node address {node:?}")))?;
        let (mut cursor, page): (u64, Vec<String>) = redis::from_redis_value(reply).map_err(parse)?;
        keys.extend(page);
        while cursor != 0 {
            let at = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port,
            });
            let (next, page): (u64, Vec<String>) =
                redis::from_redis_value(conn.route_command(scan(cursor), at).await?).map_err(parse)?;
            keys.extend(page);
            cursor = next;
        }
    }
    Ok(keys)
}

fn parse(e: redis::ParsingError) -> Error {
    Error::Protocol(format!("SCAN reply: {e}"))
}

#[cfg(test)]
mod tests {
    use super::team_of;

    #[test]
    fn stream_keys_name_their_team() {
        assert_eq!(team_of("tally:{search}:ledger").as_deref(), Some("search"));
        assert_eq!(team_of("tally:{search}:ledger:dropped"), None);
        assert_eq!(team_of("other:{x}:ledger"), None);
    }
}
