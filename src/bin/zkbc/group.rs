//! `zkbc group list` and `zkbc group describe`.

use zkbalance::cluster;
use zkbalance::inspect::{self, KafkaSide};
use zkbalance::offsets::OffsetStorage;

use crate::common::{opt, table, Format, ZkArgs};
use crate::errors::CliError;

#[derive(clap::Subcommand)]
pub enum GroupCommand {
    /// Every group under /consumers, with its member count and layout.
    List {
        #[command(flatten)]
        zk: ZkArgs,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Members, and each partition's owner, committed offset, log end offset and lag.
    Describe {
        /// The group.
        group: String,
        #[command(flatten)]
        zk: ZkArgs,
        #[command(flatten)]
        kafka: crate::security::KafkaArgs,
        /// Where committed offsets are read: zookeeper, kafka, or dual (the larger).
        #[arg(long, default_value = "dual")]
        offset_storage: OffsetStorage,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

pub async fn run(cmd: GroupCommand) -> Result<(), CliError> {
    match cmd {
        GroupCommand::List { zk, format } => {
            let client = zk.connect().await?;
            let groups = inspect::list_groups(&client).await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&groups).expect("serializable")),
                Format::Table => {
                    let rows: Vec<Vec<String>> =
                        groups.iter().map(|g| vec![g.group.clone(), g.members.to_string(), opt(&g.flavour)]).collect();
                    print!("{}", table(&["GROUP", "MEMBERS", "FLAVOUR"], &rows));
                }
            }
        }
        GroupCommand::Describe { group, zk, kafka, offset_storage, format } => {
            let client = zk.connect().await?;
            let view = cluster::read_brokers(&client).await?;
            // Log ends (and Kafka offsets) need a broker; without one the
            // ZooKeeper side is still shown.
            let kafka = KafkaSide::new(&view, &group, zk.timeout(), &kafka.access()).ok();
            let d = inspect::describe_group(&client, &group, offset_storage, kafka.as_ref()).await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&d).expect("serializable")),
                Format::Table => {
                    println!("GROUP {}: {} member(s)", d.group, d.members.len());
                    if !d.members.is_empty() {
                        let rows: Vec<Vec<String>> = d
                            .members
                            .iter()
                            .map(|m| {
                                let subscription = match &m.problem {
                                    Some(p) => format!("{} (unreadable: {p})", m.subscription),
                                    None => m.subscription.clone(),
                                };
                                vec![m.id.clone(), m.flavour.clone(), subscription]
                            })
                            .collect();
                        print!("{}", table(&["MEMBER", "FLAVOUR", "SUBSCRIPTION"], &rows));
                    }
                    println!();
                    let rows: Vec<Vec<String>> = d
                        .partitions
                        .iter()
                        .map(|p| {
                            vec![
                                p.topic.clone(),
                                p.partition.to_string(),
                                opt(&p.owner),
                                opt(&p.committed),
                                opt(&p.log_end),
                                opt(&p.lag),
                            ]
                        })
                        .collect();
                    print!("{}", table(&["TOPIC", "PARTITION", "OWNER", "COMMITTED", "LOG-END", "LAG"], &rows));
                    if !d.problems.is_empty() {
                        println!();
                        println!("{} znode(s) that cannot be used:", d.problems.len());
                        let rows: Vec<Vec<String>> =
                            d.problems.iter().map(|p| vec![p.znode.clone(), p.problem.clone()]).collect();
                        print!("{}", table(&["ZNODE", "PROBLEM"], &rows));
                    }
                }
            }
        }
    }
    Ok(())
}
