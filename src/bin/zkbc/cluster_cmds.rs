//! `zkbc brokers` and `zkbc topics`: what ZooKeeper says.

use zkbalance::cluster;

use crate::common::{opt, table, Format, ZkArgs};
use crate::errors::CliError;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    zk: ZkArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

fn skipped(view: &cluster::ClusterView) -> Result<(), CliError> {
    match view.skipped.first() {
        Some(e) => Err(CliError::Malformed(e.to_string())),
        None => Ok(()),
    }
}

pub async fn brokers(args: Args) -> Result<(), CliError> {
    let view = cluster::read_brokers(&args.zk.connect().await?).await?;
    skipped(&view)?;
    match args.format {
        Format::Json => {
            let json: Vec<_> = view
                .brokers
                .iter()
                .map(|(id, b)| {
                    serde_json::json!({
                        "id": id.0,
                        "version": b.version,
                        "endpoints": b.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "rack": b.rack,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&json).expect("serializable"));
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = view
                .brokers
                .iter()
                .map(|(id, b)| {
                    let eps = b.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
                    vec![id.to_string(), b.version.to_string(), eps, opt(&b.rack)]
                })
                .collect();
            print!("{}", table(&["ID", "VERSION", "ENDPOINTS", "RACK"], &rows));
        }
    }
    Ok(())
}

pub async fn topics(args: Args) -> Result<(), CliError> {
    let view = cluster::read(&args.zk.connect().await?).await?;
    skipped(&view)?;
    let list = |v: &[zkbalance::BrokerId]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    match args.format {
        Format::Json => {
            let json: serde_json::Map<String, serde_json::Value> = view
                .topics
                .iter()
                .map(|(t, parts)| {
                    let parts: Vec<_> = parts
                        .iter()
                        .map(|(p, pv)| {
                            serde_json::json!({
                                "partition": p.0,
                                "replicas": pv.replicas.iter().map(|b| b.0).collect::<Vec<_>>(),
                                "leader": pv.state.as_ref().and_then(|s| s.leader).map(|b| b.0),
                                "isr": pv.state.as_ref().map(|s| s.isr.iter().map(|b| b.0).collect::<Vec<_>>()),
                            })
                        })
                        .collect();
                    (t.to_string(), serde_json::Value::Array(parts))
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&json).expect("serializable"));
        }
        Format::Table => {
            let mut rows = Vec::new();
            for (t, parts) in &view.topics {
                for (p, pv) in parts {
                    let (leader, isr) = match &pv.state {
                        Some(s) => (opt(&s.leader), list(&s.isr)),
                        None => ("-".into(), "-".into()),
                    };
                    rows.push(vec![t.to_string(), p.to_string(), leader, list(&pv.replicas), isr]);
                }
            }
            print!("{}", table(&["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR"], &rows));
        }
    }
    Ok(())
}
