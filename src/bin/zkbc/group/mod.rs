//! `zkbc group list | describe | delete | watch`, with kafka-consumer-groups'
//! columns and conventions.

mod watch;

use zkbalance::cluster;
use zkbalance::inspect::{self, GroupDescription, KafkaSide};
use zkbalance::offsets::OffsetStorage;

use crate::common::{opt, table, warn, Format, ZkArgs};
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
    /// Each partition's committed offset, log end offset, lag and owner
    /// (--offsets, the default), or the members (--members). Znodes that
    /// cannot be used are listed with the reason; without Kafka, log ends
    /// and lag show as -.
    Describe {
        /// The group.
        group: String,
        /// The members: id, host, layout, partitions owned, subscription.
        #[arg(long, conflicts_with = "offsets")]
        members: bool,
        /// The partitions (the default).
        #[arg(long)]
        offsets: bool,
        /// Show these topics too (repeatable): a group without members that
        /// commits to Kafka leaves no trace of its topics in ZooKeeper.
        #[arg(short = 't', long)]
        topic: Vec<String>,
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
    /// Delete a dead group's member and owner znodes (and its committed
    /// offsets with --include-offsets). Refused while members are registered.
    Delete {
        /// The group.
        group: String,
        /// Delete its committed offsets (in ZooKeeper) too, and the group's znode.
        #[arg(long)]
        include_offsets: bool,
        #[command(flatten)]
        zk: ZkArgs,
    },
    /// Follow a group live: members joining and leaving, partitions owned
    /// and released, each change timestamped, as ZooKeeper's watches report
    /// them. Redraws the whole view on a terminal; one line per change
    /// otherwise. Runs until interrupted.
    Watch(watch::Args),
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
        GroupCommand::Describe { group, members, offsets: _, topic, zk, kafka, offset_storage, format } => {
            let client = zk.connect().await?;
            let view = cluster::read_brokers(&client).await?;
            // Without Kafka the ZooKeeper side is still shown.
            let kafka = match KafkaSide::new(&view, &group, zk.timeout(), &kafka.access()) {
                Ok(k) => Some(k),
                Err(e) => {
                    warn(format!("{e}: LOG-END-OFFSET and LAG are not shown"));
                    None
                }
            };
            let d = inspect::describe_group(&client, &group, offset_storage, kafka.as_ref(), &topic).await?;
            if let Some(why) = &d.kafka_unavailable {
                warn(format!("Kafka did not answer ({why}): LOG-END-OFFSET and LAG are not shown"));
            }
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&d).expect("serializable")),
                Format::Table if members => print!("{}", members_table(&d)),
                Format::Table => print!("{}", offsets_table(&d)),
            }
        }
        GroupCommand::Delete { group, include_offsets, zk } => {
            let client = zk.connect().await?;
            let deleted = inspect::delete_group(&client, &group, include_offsets).await?;
            let kept =
                if deleted.offsets { "" } else { "; its committed offsets are kept (--include-offsets deletes them)" };
            println!("deleted group {}: {} znode(s){kept}", deleted.group, deleted.znodes);
        }
        GroupCommand::Watch(args) => watch::run(args).await?,
    }
    Ok(())
}

fn problems(d: &GroupDescription) -> String {
    if d.problems.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = d.problems.iter().map(|p| vec![p.znode.clone(), p.problem.clone()]).collect();
    format!("\n{} znode(s) that cannot be used:\n{}", d.problems.len(), table(&["ZNODE", "PROBLEM"], &rows))
}

fn offsets_table(d: &GroupDescription) -> String {
    let rows: Vec<Vec<String>> = d
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.topic.clone(),
                p.partition.to_string(),
                opt(&p.committed),
                opt(&p.log_end),
                opt(&p.lag),
                opt(&p.consumer_id),
                opt(&p.host),
            ]
        })
        .collect();
    let headers = ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST"];
    let active = if d.members.is_empty() { " (no active members)" } else { "" };
    format!("GROUP {}: {} member(s){active}\n{}{}", d.group, d.members.len(), table(&headers, &rows), problems(d))
}

fn members_table(d: &GroupDescription) -> String {
    let rows: Vec<Vec<String>> = d
        .members
        .iter()
        .map(|m| {
            let subscription = match &m.problem {
                Some(p) => format!("{} (unreadable: {p})", m.subscription),
                None => m.subscription.clone(),
            };
            vec![m.id.clone(), opt(&m.host), m.flavour.clone(), m.partitions.to_string(), subscription]
        })
        .collect();
    let headers = ["CONSUMER-ID", "HOST", "FLAVOUR", "#PARTITIONS", "SUBSCRIPTION"];
    format!("GROUP {}: {} member(s)\n{}{}", d.group, d.members.len(), table(&headers, &rows), problems(d))
}
